"""Unused imports, undefined names and shadowed definitions fail the suite (pyflakes)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pyflakes_clean():
    targets = [str(ROOT / d) for d in ("matseg_ros", "test", "bench", "launch", "scripts", "docs")]
    result = subprocess.run([sys.executable, "-m", "pyflakes", *targets], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
