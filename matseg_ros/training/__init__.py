"""The bundled training module: datasets, transforms, losses, metrics, schedules, trainer,
evaluation, inference and ONNX export.

May import: the top-level shared modules, `runtime`, `io` and `networks`. Never rclpy or
onnxruntime at import time (ONNX Runtime is loaded only to check or run an exported file).
"""
