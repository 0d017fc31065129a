"""Data on disk and in recordings: the dataset layout, mask files, image folders, videos and
rosbag2 files as frame streams, `matseg bag`, and pairing of two streams by stamp.

May import: the top-level shared modules and `runtime` (to decode and segment frames).
Never rclpy, torch or the training module.
"""
