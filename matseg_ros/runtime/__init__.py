"""The ROS-free runtime: a camera frame in, class ids, confidence, colour masks and the
material summary out (encodings, engines, model files, pipeline, rendering, run statistics).

May import: the top-level shared modules (`materials`, `paths`, `fileio`, `confusion`) and,
for the PyTorch engine only, `networks`. Never rclpy; torch and onnxruntime only inside
the engine that needs them.
"""
