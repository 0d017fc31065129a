"""Model zoo: shapes, backbones honoured, torchvision key compatibility, frozen BN,
parameter groups, pretrained loading, registry errors, and the export-safe layers
checked against PyTorch's own operators."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from matseg_ros.networks import (ARCHITECTURES, available_models, build_model, canonical_arch,
                                 parameter_groups)
from matseg_ros.networks.backbones import VGG, MobileNetV2, ResNet, Xception
from matseg_ros.networks.layers import adaptive_avg_pool, max_unpool

# Published torchvision parameter counts (ImageNet classifiers, 1000 classes).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160, "resnet152": 60_192_808,
                      "vgg16": 138_357_544, "vgg16_bn": 138_365_992}
FC_PARAMS = {"resnet18": 512 * 1000 + 1000, "resnet34": 512 * 1000 + 1000}
FC_PARAMS.update({n: 2048 * 1000 + 1000 for n in ("resnet50", "resnet101", "resnet152")})
VGG_CLASSIFIER = (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
FC_PARAMS.update({"vgg16": VGG_CLASSIFIER, "vgg16_bn": VGG_CLASSIFIER})


def smallest_backbone(arch: str) -> str | None:
    backbones = ARCHITECTURES[arch][1]
    return "resnet18" if "resnet18" in backbones else backbones[0]


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_logits_at_input_size_for_each_architecture(arch):
    torch.manual_seed(0)
    model = build_model(arch, smallest_backbone(arch), num_classes=3, **_small(arch)).eval()
    with torch.no_grad():
        for size in ((64, 64), (65, 97)):
            out = model(torch.randn(1, 3, *size))
            assert out.shape == (1, 3, *size)
            assert torch.isfinite(out).all()
    model.train()
    out = model(torch.randn(2, 3, 33, 47))
    if arch == "PSPNet":
        logits, aux = out
        assert logits.shape == aux.shape == (2, 3, 33, 47)
    else:
        assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 33, 47)


def _small(arch: str) -> dict:
    return {"fc_channels": 64} if arch == "FCN8" else {}


def test_every_pair_builds_on_the_backbone_asked_for():
    """The original built ResNet-101 whatever the config said: count the encoder."""
    seen: dict[str, set[int]] = {}
    with torch.device("meta"):
        for arch, backbone in available_models():
            model = build_model(arch, backbone, num_classes=9)
            assert (model.arch, model.backbone_name) == (arch, backbone)
            if backbone in TORCHVISION_PARAMS:
                assert count(model.encoder) == TORCHVISION_PARAMS[backbone] - FC_PARAMS[backbone], (arch, backbone)
            elif backbone == "xception":
                assert isinstance(model.encoder, Xception)
            seen.setdefault(arch, set()).add(count(model))
    for arch, counts in seen.items():
        assert len(counts) == len(ARCHITECTURES[arch][1]), f"{arch}: two backbones gave the same model"


def test_hand_counted_resnets_match_torchvision():
    assert count(ResNet(18, num_classes=1000)) == 11_689_512
    assert count(ResNet(50, num_classes=1000)) == 25_557_032
    with torch.device("meta"):  # skips the 123M-parameter classifier's initialisation
        assert count(VGG(batch_norm=False, num_classes=1000)) == 138_357_544
    # Hand count, ResNet-18 without fc: stem conv 7·7·3·64 + BN, 8 basic blocks, 3 downsamples.
    bn = lambda c: 2 * c  # noqa: E731
    blocks = 0
    for c_in, c, n in ((64, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 2)):
        for i in range(n):
            cin = c_in if i == 0 else c
            blocks += 9 * cin * c + bn(c) + 9 * c * c + bn(c)
        if c_in != c:
            blocks += c_in * c + bn(c)
    assert count(ResNet(18)) == 7 * 7 * 3 * 64 + bn(64) + blocks


def torchvision_resnet18_keys() -> list[str]:
    """torchvision's resnet18 state_dict names (no num_batches_tracked, as in its ImageNet file)."""
    bn = ["weight", "bias", "running_mean", "running_var"]
    keys = ["conv1.weight"] + [f"bn1.{k}" for k in bn]
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            keys += [f"{p}.conv1.weight"] + [f"{p}.bn1.{k}" for k in bn]
            keys += [f"{p}.conv2.weight"] + [f"{p}.bn2.{k}" for k in bn]
            if layer > 1 and block == 0:
                keys += [f"{p}.downsample.0.weight"] + [f"{p}.downsample.1.{k}" for k in bn]
    return keys + ["fc.weight", "fc.bias"]


def test_resnet_state_dict_has_torchvision_names_and_loads_strictly():
    keys = torchvision_resnet18_keys()
    assert len(keys) == 102
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "layer1.0.conv1.weight"]
    assert keys[-7:] == ["layer4.1.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias",
                         "layer4.1.bn2.running_mean", "layer4.1.bn2.running_var", "fc.weight", "fc.bias"]
    model = ResNet(18, num_classes=1000)
    own = model.state_dict()
    assert len(own) == 122  # + 20 num_batches_tracked
    assert [k for k in own if not k.endswith("num_batches_tracked")] == keys
    shapes = {"conv1.weight": (64, 3, 7, 7), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
              "layer4.1.conv2.weight": (512, 512, 3, 3), "fc.weight": (1000, 512)}
    for key, shape in shapes.items():
        assert tuple(own[key].shape) == shape
    torch.manual_seed(1)
    file_state = {k: torch.randn_like(v) for k, v in own.items() if k in keys}
    ResNet(18, num_classes=1000).load_state_dict(file_state, strict=True)


def test_vgg_names_match_torchvision_layout():
    names = [k for k in VGG(batch_norm=True).state_dict() if k.endswith("weight")]
    assert names[:3] == ["features.0.weight", "features.1.weight", "features.3.weight"]
    assert names[-1] == "features.41.weight"
    with torch.device("meta"):
        plain = list(VGG(num_classes=1000).state_dict())
    assert plain[-6:] == ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight",
                          "classifier.3.bias", "classifier.6.weight", "classifier.6.bias"]
    assert "features.28.weight" in plain


def test_pretrained_torchvision_file_loads_into_the_encoder(tmp_path, caplog):
    torch.manual_seed(2)
    source = ResNet(18, num_classes=1000).state_dict()
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in source.items()
             if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    with caplog.at_level(logging.WARNING):
        model = build_model("DeepLab", "resnet18", num_classes=3, pretrained=path)
    report = model.pretrained_report
    assert report.missing == [] and sorted(report.unexpected) == ["fc.bias", "fc.weight"]
    assert "fc.weight" in caplog.text
    assert torch.equal(model.encoder.layer3[1].conv2.weight,
                       state["layer3.1.conv2.weight"])
    assert torch.equal(model.encoder.bn1.running_var, state["bn1.running_var"])

    partial = {k: v for k, v in state.items() if not k.startswith("layer4")}
    torch.save({"state_dict": {"module." + k: v for k, v in partial.items()}}, tmp_path / "wrapped.pth")
    report = build_model("UNet", "resnet18", pretrained=tmp_path / "wrapped.pth").pretrained_report
    assert report.missing and all(k.startswith("layer4") for k in report.missing)


def test_fcn_fc6_fc7_start_from_the_vgg_classifier(tmp_path, caplog):
    torch.manual_seed(3)
    width = 64  # torchvision's is 4096; a narrow one keeps the file small
    state = {k: torch.randn_like(v) for k, v in VGG().state_dict().items()}
    state.update({"classifier.0.weight": torch.randn(width, 512 * 7 * 7) * 0.01,
                  "classifier.0.bias": torch.randn(width),
                  "classifier.3.weight": torch.randn(width, width) * 0.1,
                  "classifier.3.bias": torch.randn(width),
                  "classifier.6.weight": torch.randn(1000, width), "classifier.6.bias": torch.randn(1000)})
    path = tmp_path / "vgg16-imagenet.pth"
    torch.save(state, path)
    model = build_model("FCN8", num_classes=3, fc_channels=width, pretrained=path)
    report = model.pretrained_report
    assert report.missing == [] and sorted(report.unexpected) == ["classifier.6.bias", "classifier.6.weight"]
    assert torch.equal(model.encoder.features[28].weight, state["features.28.weight"])
    # The 7×7 conv at the centre of a 7×7 pool5 map sees the whole map: it must equal
    # the classifier's Linear on the flattened map (torchvision's avgpool→flatten order).
    fc6, fc7 = model.decoder.fc[0], model.decoder.fc[3]
    pool5 = torch.randn(2, 512, 7, 7)
    with torch.no_grad():
        expected6 = F.linear(pool5.flatten(1), state["classifier.0.weight"], state["classifier.0.bias"])
        torch.testing.assert_close(fc6(pool5)[:, :, 3, 3], expected6, rtol=1e-4, atol=1e-4)
        hidden = torch.randn(2, width)
        expected7 = F.linear(hidden, state["classifier.3.weight"], state["classifier.3.bias"])
        torch.testing.assert_close(fc7(hidden[:, :, None, None])[:, :, 0, 0], expected7)

    with caplog.at_level(logging.WARNING):
        other = build_model("FCN8", num_classes=3, fc_channels=32, pretrained=path)
    assert "fc6/fc7 not initialised" in caplog.text and "fc_channels 32" in caplog.text
    assert {"classifier.0.weight", "classifier.3.weight"} <= set(other.pretrained_report.unexpected)
    assert not torch.equal(other.decoder.fc[3].weight[:, :, 0, 0], state["classifier.3.weight"][:32, :32])


def test_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_model("PSPNet", "resnet18", pretrained=tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="local weights file"):
        build_model("PSPNet", "resnet18", pretrained=True)
    torch.save(ResNet(34).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="wrong shape"):
        build_model("PSPNet", "resnet50", pretrained=tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="own encoder"):
        build_model("ENet", pretrained=tmp_path / "r34.pth")


def test_frozen_bn_keeps_running_stats_through_train():
    torch.manual_seed(3)
    model = build_model("PSPNet", "resnet18", num_classes=3, freeze_bn=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert model.decoder.bottleneck[1].training  # dropout still trains
    before = [b.clone() for m in bns for b in (m.running_mean, m.running_var)]
    logits, aux = model(torch.randn(2, 3, 32, 32) * 3 + 1)
    (logits.sum() + aux.sum()).backward()
    after = [b for m in bns for b in (m.running_mean, m.running_var)]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    unfrozen = build_model("PSPNet", "resnet18", num_classes=3).train()
    unfrozen(torch.randn(2, 3, 32, 32) * 3 + 1)
    assert not torch.equal(unfrozen.encoder.bn1.running_mean, torch.zeros(64))


def test_freeze_backbone_and_parameter_groups():
    model = build_model("DeepLab", "resnet18", num_classes=3, freeze_backbone=True)
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    groups = parameter_groups(model, lr=0.01)
    assert [g["name"] for g in groups] == ["head"]

    model = build_model("UperNet", "resnet18", num_classes=3)
    groups = parameter_groups(model, lr=0.01, backbone_lr_scale=0.1)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", pytest.approx(0.001)), ("head", 0.01)]
    backbone = {id(p) for p in groups[0]["params"]}
    assert backbone == {id(p) for p in model.encoder.parameters()}
    assert len(backbone) + len(groups[1]["params"]) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(0.001), 0.01]

    own = parameter_groups(build_model("ENet", num_classes=3), lr=0.1)
    assert [(g["name"], g["lr"]) for g in own] == [("head", 0.1)]


def test_registry_names_and_errors():
    assert canonical_arch("deeplabv3plus") == "DeepLab"
    assert canonical_arch("fcn8s") == "FCN8" and canonical_arch("pspnet") == "PSPNet"
    assert canonical_arch("DUC-HDC") == "DeepLab_DUC_HDC" and canonical_arch("unet") == "UNet"
    assert build_model("enet", num_classes=2).arch == "ENet"
    with pytest.raises(KeyError, match="PSPNet"):
        build_model("DeepLabV4")
    with pytest.raises(KeyError, match="resnet18"):
        build_model("DeepLab", "resnet19")
    with pytest.raises(ValueError, match="vgg16_bn"):
        build_model("SegNet", "resnet50")
    with pytest.raises(ValueError, match="ENet.*resnet18"):
        build_model("ENet", "resnet18")
    with pytest.raises(ValueError, match="output_stride must be 8 or 16, got 4"):
        build_model("DeepLab", "resnet18", output_stride=4)
    with pytest.raises(TypeError, match="output_stride"):
        build_model("UNet", output_stride=8)
    from matseg_ros.networks.backbones import get_encoder
    with pytest.raises(ValueError, match="output stride 32 only"):
        get_encoder("vgg16", 16)
    pairs = available_models()
    assert ("DeepLab", "xception") in pairs and ("UNet", None) in pairs and ("ENet", None) in pairs
    assert len(pairs) == len(set(pairs)) == 38


def test_mobilenetv2_matches_torchvision_and_ppliteseg_follows_the_paper():
    # torchvision's mobilenet_v2 has 3,504,872 parameters; the encoder leaves out its classifier
    # (1280·1000 + 1000) and the last 1×1 expansion features.18 (320·1280 conv + BN)
    encoder = MobileNetV2()
    assert count(encoder) == 3_504_872 - (1280 * 1000 + 1000) - (320 * 1280 + 2 * 1280)
    assert "features.17.conv.3.running_var" in encoder.state_dict()  # torchvision's names
    shapes = [tuple(f.shape[1:]) for f in encoder(torch.zeros(1, 3, 64, 96))]
    assert shapes == [(16, 32, 48), (24, 16, 24), (32, 8, 12), (96, 4, 6), (320, 2, 3)]
    assert tuple(MobileNetV2(16)(torch.zeros(1, 3, 64, 96))[-1].shape[-2:]) == (4, 6)
    ppl = build_model("PPLiteSeg", "resnet18")
    assert ppl.decoder.sppm.bins == (1, 2, 4)  # the paper's SPPM bins, summed
    widths = [ppl.decoder.sppm.out[0].out_channels, ppl.decoder.fuse16.out[0].out_channels,
              ppl.decoder.fuse8.out[0].out_channels]
    assert widths == [128, 96, 64]  # decoder channels narrowing from stride 32 to 8
    assert ppl.decoder.fuse8.attention[0][0].in_channels == 4  # mean and max of both inputs
    with pytest.raises(ValueError, match="decoder_channels must be 3 positive widths"):
        build_model("PPLiteSeg", "resnet18", decoder_channels=(64, 32))


def test_paper_details():
    dl8 = build_model("DeepLab", "resnet18", output_stride=8)
    rates = [b[0].dilation[0] for b in dl8.decoder.aspp.branches[1:]]
    assert rates == [12, 24, 36]
    dl16 = build_model("DeepLab", "resnet18")
    assert [b[0].dilation[0] for b in dl16.decoder.aspp.branches[1:]] == [6, 12, 18]
    assert dl16.decoder.low_level[0].out_channels == 48
    assert dl16.encoder.layer4[0].conv1.stride == (1, 1) and dl16.encoder.layer3[0].conv1.stride == (2, 2)
    duc = build_model("DeepLab_DUC_HDC", "resnet50")
    assert [b.conv2.dilation[0] for b in duc.encoder.layer3] == [1, 2, 3, 1, 2, 3]
    assert [b.conv2.dilation[0] for b in duc.encoder.layer4] == [3, 4, 5]
    assert build_model("PSPNet", "resnet18").decoder.ppm.bins == (1, 2, 3, 6)
    gcn = build_model("GCN", "resnet18")
    assert gcn.decoder.gcn[0].left[0].kernel_size == (15, 1)


@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_adaptive_avg_pool_matches_pytorch(bins):
    torch.manual_seed(4)
    for h, w in ((1, 1), (2, 5), (6, 6), (7, 13), (33, 20)):
        x = torch.randn(2, 3, h, w)
        torch.testing.assert_close(adaptive_avg_pool(x, bins), F.adaptive_avg_pool2d(x, bins))


def test_max_unpool_matches_pytorch_on_odd_sizes():
    torch.manual_seed(5)
    x = torch.randn(2, 4, 15, 22)
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    ours = max_unpool(pooled, idx, x)
    torch.testing.assert_close(ours, F.max_unpool2d(pooled, idx, 2, 2, output_size=x.shape[-2:]))


def test_fcn_transposed_convs_start_as_bilinear_upsampling():
    from matseg_ros.networks.fcn import bilinear_transposed_conv
    x = torch.randn(1, 3, 8, 8)
    up = bilinear_transposed_conv(3, 4, 2)(x).detach()
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])


def test_state_dict_round_trip_rebuilds_the_same_model(tmp_path):
    """What a checkpoint relies on: names stable across builds, weights_only-loadable."""
    torch.manual_seed(6)
    model = build_model("UperNet", "resnet18", num_classes=4).eval()
    torch.save(model.state_dict(), tmp_path / "m.pth")
    state = torch.load(tmp_path / "m.pth", weights_only=True)
    assert not any(k.startswith("module.") for k in state)
    torch.manual_seed(7)
    again = build_model("UperNet", "resnet18", num_classes=4)
    again.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), model(x))


def test_enet_context_starts_as_the_plain_network_and_loads_its_weights():
    """The image-level prior's last conv starts at zero: a plain ENet's weights give the same
    logits in the context model; loading them needs allow_new (fine-tuning), and only the
    prior may be missing."""
    from matseg_ros.runtime.checkpoint import CheckpointError, load_weights
    torch.manual_seed(0)
    plain = build_model("ENet", num_classes=9).eval()
    ctx = build_model("ENet", num_classes=9, context=True).eval()
    assert load_weights(ctx, plain.state_dict(), "plain.pt", "ENet", allow_new=True) == [
        "decoder.prior.0.weight", "decoder.prior.0.bias", "decoder.prior.2.weight", "decoder.prior.2.bias"]
    x = torch.randn(2, 3, 72, 100)
    with torch.no_grad():
        assert torch.equal(plain(x), ctx(x))
    with pytest.raises(CheckpointError, match="plain.pt: weights do not fit ENet"):
        load_weights(ctx, plain.state_dict(), "plain.pt", "ENet")
    trimmed = {k: v for k, v in plain.state_dict().items() if not k.startswith("decoder.stage5")}
    with pytest.raises(CheckpointError):  # only function-preserving parameters may be missing
        load_weights(ctx, trimmed, "plain.pt", "ENet", allow_new=True)
    # the prior is one logit offset per class, the same at every pixel
    with torch.no_grad():
        ctx.decoder.prior[2].bias.copy_(torch.arange(9, dtype=torch.float32))
        assert torch.allclose(ctx(x) - plain(x), torch.arange(9.0).view(1, 9, 1, 1).expand(2, 9, 72, 100))
