"""Thin rclpy nodes over the runtime core; the only part of the package that imports rclpy."""
