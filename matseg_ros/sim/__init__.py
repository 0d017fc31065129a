"""Gazebo without Gazebo: the SDF world as data, live evaluation against the segmentation
camera's ground truth, and recording of simulated frames as a training set.

May import: the top-level shared modules, `runtime` and `io`. Never rclpy, torch or the
training module (the nodes in `ros` put these on the wire).
"""
