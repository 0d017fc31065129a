"""The bundled training module: datasets, transforms, losses, metrics, schedules, trainer, export."""
