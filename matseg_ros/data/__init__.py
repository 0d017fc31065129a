"""Dataset tools: augmentation, synthetic masks, scraping, validation, splits, synthetic scenes.

May import: the top-level shared modules, `io` and `training`. Never rclpy or onnxruntime.
"""
