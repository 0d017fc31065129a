"""Thin rclpy nodes over the core (`runtime`, `io`, `sim`, `dosemap`); the only part of the package
that imports rclpy. Nodes hold no ML logic. May import the core, never `training` or `data`.
"""
