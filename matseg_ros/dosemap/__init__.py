"""The UV-C dose map, ROS-free: surface voxels in a fixed frame with fused materials, normals
and the dose the lamp has delivered along the robot's route (docs/disinfection.md).

May import: the top-level shared modules, `runtime` (the lamp model, cloud layout) and `io`.
Never rclpy, torch or the training module; the node in `ros.dose_mapper` puts it on the wire.
"""
