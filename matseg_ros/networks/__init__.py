"""The model zoo in plain PyTorch (no torchvision): `build_model(arch, backbone, num_classes)`."""
