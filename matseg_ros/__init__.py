"""matseg_ros: material semantic segmentation for ROS 2.

The top level is the ROS-free runtime core (materials, image encodings, rendering,
inference engines). `networks` and `training` need PyTorch, `ros` needs rclpy.
"""
__version__ = "0.1.0"

import os

# albumentations asks PyPI for a newer release when it is imported unless this is set;
# nothing in matseg_ros goes online at run time (the data scraper only, when asked to).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
