"""Shared fixtures. DDS stays on this machine and on a domain of this test run."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# A domain per test run (100..199), so parallel runs on one machine never cross.
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def materials():
    from matseg_ros.materials import load_materials
    return load_materials()
