"""matseg_ros: material semantic segmentation for ROS 2.

The top level is the ROS-free runtime core (materials, image encodings, rendering,
inference engines). `networks` and `training` need PyTorch, `ros` needs rclpy.
"""
__version__ = "0.1.0"
