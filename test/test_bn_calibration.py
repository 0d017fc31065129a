"""BatchNorm statistics re-estimated at the deployed input size (`matseg export --calibrate-bn`)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from matseg_ros.networks import build_model
from matseg_ros.training.bn_calibration import recalibrate_batchnorm


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout2d(0.5),
                         nn.Conv2d(4, 5, 1), nn.BatchNorm2d(5))


def expected_statistics(net: nn.Sequential, batches: list[torch.Tensor]):
    """Plain tensor arithmetic: each BatchNorm normalises with its batch's mean and biased
    variance, dropout is the identity, and the running values are the average over batches
    of the batch mean and unbiased variance."""
    first, second = [], []
    with torch.no_grad():
        for x in batches:
            h = net[0](x)
            first.append((h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), unbiased=True)))
            mean, var = h.mean(dim=(0, 2, 3), keepdim=True), h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
            h = (h - mean) / torch.sqrt(var + net[1].eps) * net[1].weight.view(1, -1, 1, 1) \
                + net[1].bias.view(1, -1, 1, 1)
            h = net[3](h)
            second.append((h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), unbiased=True)))
    return [tuple(torch.stack(values).mean(0) for values in zip(*layer)) for layer in (first, second)]


def test_running_statistics_are_the_average_over_batches_with_dropout_off():
    net = small_net()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 2)
        net[1].bias.uniform_(-1, 1)
    net.eval()
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 3, 12, 16, generator=generator) * 3 + 1 for _ in range(5)]
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}

    assert recalibrate_batchnorm(net, batches, progress=False) == 20
    for norm, (mean, var) in zip((net[1], net[4]), expected_statistics(net, batches)):
        torch.testing.assert_close(norm.running_mean, mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(norm.running_var, var, rtol=1e-5, atol=1e-5)
        assert norm.momentum == 0.1  # restored
    assert not net.training and not any(m.training for m in net.modules())
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())  # weights untouched


def test_frozen_batchnorm_is_recalibrated_and_stays_frozen():
    model = build_model("ENet", num_classes=9)
    model.set_freeze_bn(True)
    model.train()
    before = model.encoder.initial.bn.running_mean.clone()
    batches = [torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(2))]
    assert recalibrate_batchnorm(model, batches, progress=False) == 2
    assert not torch.equal(model.encoder.initial.bn.running_mean, before)
    assert model.training and not model.encoder.initial.bn.training  # back to train, BN frozen


def test_nothing_to_recalibrate_is_an_error():
    with pytest.raises(ValueError, match="no BatchNorm layers"):
        recalibrate_batchnorm(nn.Conv2d(3, 3, 1), [torch.zeros(1, 3, 4, 4)], progress=False)
    with pytest.raises(ValueError, match="no images"):
        recalibrate_batchnorm(small_net(), [], progress=False)
