"""ament_python package: colcon on a ROS 2 machine, pip (with the `ros` extra) elsewhere."""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "matseg_ros"
SHARE_TREES = ("launch", "config", "models", "gazebo_worlds")


def share_files() -> list[tuple[str, list[str]]]:
    """Install each shared tree recursively under share/matseg_ros, keeping its layout."""
    entries = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ]
    for tree in SHARE_TREES:
        by_dir: dict[str, list[str]] = {}
        for path in sorted(glob(f"{tree}/**/*", recursive=True)):
            if os.path.isfile(path):
                by_dir.setdefault(os.path.dirname(path), []).append(path)
        entries += [(f"share/{PACKAGE}/{d}", files) for d, files in by_dir.items()]
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=share_files(),
    python_requires=">=3.10",
    install_requires=["setuptools", "numpy", "opencv-python-headless", "PyYAML"],
    extras_require={
        "onnx": ["onnxruntime-gpu", "onnx"],  # onnx: the engine appends argmax/confidence to the graph
        "train": [
            "torch", "onnx", "onnxscript", "onnxruntime-gpu", "albumentations", "tensorboard", "tqdm",
            "matplotlib", "requests", "beautifulsoup4", "pycocotools", "rosbags", "rosbags-image",
        ],
        "scrape-js": ["selenium"],
        "ros": [
            "ros-rclpy", "ros-sensor-msgs", "ros-std-msgs", "ros-diagnostic-msgs",
            "ros-builtin-interfaces", "ros-rmw-fastrtps-cpp", "ros-ament-index-python",
            "ros-geometry-msgs", "ros-std-srvs",
        ],
        "dev": ["pytest", "pytest-timeout", "torchmetrics", "scikit-image"],
    },
    zip_safe=True,
    maintainer="matseg_ros maintainers",
    maintainer_email="matseg@example.org",
    description="Material semantic segmentation for ROS 2: node, training module, data tools.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "matseg = matseg_ros.cli:main",
            "segment_node = matseg_ros.ros.segment_node:main",
            "camera_replay = matseg_ros.ros.camera_replay:main",
            "sim_evaluator = matseg_ros.ros.sim_evaluator:main",
            "dataset_recorder = matseg_ros.ros.dataset_recorder:main",
            "dose_mapper = matseg_ros.ros.dose_mapper:main",
        ],
    },
)
