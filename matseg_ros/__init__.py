"""matseg_ros: material semantic segmentation for ROS 2.

Subpackages, by concern (each `__init__` says what it may import):
`runtime` frame -> outputs (engines, pipeline, rendering, encodings); `io` datasets, masks,
recordings; `sim` Gazebo world, evaluation, recording; `networks` the model zoo (PyTorch);
`training` datasets, losses, trainer, eval, export; `data` dataset tools; `ros` the rclpy
nodes; `demo` the `matseg demo` command. At the top: `materials` (the class map), `cli`
(the `matseg` command) and the modules every part shares (`paths`, `fileio`, `confusion`).
Dependency direction: ros -> runtime/io/sim <- training <- data.
"""
__version__ = "0.1.0"

import os

# albumentations asks PyPI for a newer release when it is imported unless this is set;
# nothing in matseg_ros goes online at run time (the data scraper only, when asked to).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
