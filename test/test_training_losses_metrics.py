"""Losses against hand-computed cases; ConfusionMatrix against torchmetrics; collapse on
hand-made masks; schedules."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from matseg_ros.training.collapse import CollapseTally, collapsed, dominant_share, truth_materials
from matseg_ros.training.losses import (CE_DiceLoss, CrossEntropyLoss2d, DiceLoss, FocalLoss,
                                        LovaszSoftmax, build_loss)
from matseg_ros.training.metrics import ConfusionMatrix
from matseg_ros.training.schedules import (ScheduleError, build_scheduler, load_schedule_state,
                                           poly_factor)

LN3 = math.log(3.0)


def case():
    """Three pixels, two classes: A and B have p = (1/4, 3/4); C is ignored with wild logits."""
    logits = torch.tensor([[0.0, LN3], [0.0, LN3], [50.0, -50.0]]).T.reshape(1, 2, 1, 3)
    target = torch.tensor([[[1, 0, 255]]])
    return logits, target


def test_cross_entropy_hand_computed():
    logits, target = case()
    expected = (math.log(4 / 3) + math.log(4)) / 2
    assert CrossEntropyLoss2d()(logits, target).item() == pytest.approx(expected, rel=1e-6)
    weighted = CrossEntropyLoss2d(weight=[1.0, 3.0])(logits, target).item()
    assert weighted == pytest.approx((3 * math.log(4 / 3) + math.log(4)) / 4, rel=1e-6)


def test_dice_hand_computed_and_target_untouched():
    logits, target = case()
    before = target.clone()
    # class 0: 2·(1/4) / (1/2 + 1) = 1/3; class 1: 2·(3/4) / (3/2 + 1) = 3/5
    assert DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(1 - (1 / 3 + 3 / 5) / 2, rel=1e-6)
    assert DiceLoss(smooth=1.0)(logits, target).item() == pytest.approx(
        1 - ((0.5 + 1) / (1.5 + 1) + (1.5 + 1) / (2.5 + 1)) / 2, rel=1e-6)
    assert torch.equal(target, before)  # the original overwrote ignored pixels in place


def test_ce_dice_is_the_sum():
    logits, target = case()
    expected = (math.log(4 / 3) + math.log(4)) / 2 + 1 - (1 / 3 + 3 / 5) / 2
    assert CE_DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_focal_hand_computed():
    logits, target = case()
    expected = ((1 / 4) ** 2 * math.log(4 / 3) + (3 / 4) ** 2 * math.log(4)) / 2
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(
        CrossEntropyLoss2d()(logits, target).item(), rel=1e-6)
    alpha = FocalLoss(gamma=2.0, alpha=[2.0, 0.5])(logits, target).item()
    assert alpha == pytest.approx((0.5 * (1 / 4) ** 2 * math.log(4 / 3)
                                   + 2.0 * (3 / 4) ** 2 * math.log(4)) / 2, rel=1e-6)


def test_lovasz_hand_computed_and_jaccard_at_vertices():
    logits, target = case()
    # class 0: errors sorted (3/4 fg, 1/4 bg), grad (1, 0) -> 3/4; class 1: grad (1/2, 1/2) -> 1/2
    assert LovaszSoftmax()(logits, target).item() == pytest.approx((3 / 4 + 1 / 2) / 2, rel=1e-6)
    # one-hot predictions: the Lovász extension equals 1 - IoU per class
    hard = torch.tensor([[-60.0, 60.0], [-60.0, 60.0], [0.0, 0.0]]).T.reshape(1, 2, 1, 3)
    assert LovaszSoftmax()(hard, target).item() == pytest.approx(((1 - 0) + (1 - 1 / 2)) / 2, abs=1e-6)
    assert LovaszSoftmax(classes=[1])(hard, target).item() == pytest.approx(0.5, abs=1e-6)
    per_image = LovaszSoftmax(per_image=True)(torch.cat([hard, logits]), torch.cat([target, target]))
    assert per_image.item() == pytest.approx((0.75 + 0.625) / 2, rel=1e-6)


def test_losses_ignore_everything_ignored_and_build_errors():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    for name in ("DiceLoss", "FocalLoss", "LovaszSoftmax"):
        loss = build_loss(name)(logits, target)
        assert loss.item() == 0.0 and loss.requires_grad, name
    with pytest.raises(KeyError, match="unknown loss 'Dice'.*DiceLoss"):
        build_loss("Dice")
    with pytest.raises(ValueError, match="LovaszSoftmax takes no class weights"):
        build_loss("LovaszSoftmax", class_weights=[1, 2, 3])
    with pytest.raises(ValueError, match="bad loss_args"):
        build_loss("DiceLoss", gamma=2)


def test_confusion_matrix_hand_case_absent_class_is_nan():
    cm = ConfusionMatrix(4)
    target = np.array([0, 0, 1, 1, 255, 2])
    pred = np.array([0, 1, 1, 1, 3, 0])
    cm.update(pred, target)
    m = cm.compute()
    # class 0: tp 1, fn 1, fp 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 0 -> 0; class 3: absent
    assert m["per_class_iou"][:3] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(m["per_class_iou"][3])
    assert m["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)  # not divided by 4
    assert m["pixel_accuracy"] == pytest.approx(3 / 5)
    assert m["pixels"] == 5



def test_an_excluded_class_leaves_the_means_but_predicting_it_is_still_wrong():
    """ignore_index naming class 0: its pixels are not scored, yet predicting 0 on a class-1
    pixel is a miss for class 1."""
    cm = ConfusionMatrix(3, exclude=0)
    target = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 0, 1, 2, 2])
    cm.update(pred, target)
    m = cm.compute()
    # class 1: tp 1, fn 1 (predicted 0) -> 1/2; class 2: 1; class 0: out of the means
    assert math.isnan(m["per_class_iou"][0]) and m["per_class_iou"][1:] == pytest.approx([0.5, 1.0])
    assert m["mIoU"] == pytest.approx(0.75) and m["pixels"] == 4
    assert m["pixel_accuracy"] == pytest.approx(3 / 4)

def test_collapse_on_hand_made_masks():
    """10×10 truths: 100 pixels; materials need >= 1 % of the labelled (non-ignore) pixels."""
    truth = np.zeros((10, 10), np.uint8)
    truth[:, :5] = 4                       # metal, 50 px
    truth[:, 5:7] = 6                      # plastic, 20 px
    truth[9, 9] = 8                        # wood, 1 px of 100 labelled: exactly 1 %
    assert truth_materials(truth) == [4, 6, 8]
    assert truth_materials(truth, min_share=0.02) == [4, 6]
    ignored = truth.copy()
    ignored[:6, 5:9] = 255                 # 24 plastic and background pixels leave the 100 labelled
    assert truth_materials(ignored, min_share=0.013) == [4, 6, 8]  # 1 of 76 > 1.3 %

    pred = np.zeros((10, 10), np.int64)
    pred[:, :9] = 4                        # 90 metal of 90 non-background: share 1.0
    assert dominant_share(pred) == 1.0 and collapsed(pred, truth) is True
    pred[0, :9] = 6                        # 81 metal of 90: 0.90 is not > 0.90
    assert dominant_share(pred) == pytest.approx(0.9) and collapsed(pred, truth) is False
    assert collapsed(np.zeros((10, 10), np.int64), truth) is False     # all background: no material
    one = np.full((10, 10), 4, np.uint8)
    assert collapsed(pred, one) is None                                # one material: not counted

    tally = CollapseTally()
    for p, t in [(np.full((10, 10), 4), truth), (pred, truth), (pred, one), (np.full((10, 10), 6), truth)]:
        tally.add(p, t)
    assert tally.compute() == {"collapse_rate": 2 / 3, "collapsed_images": 2, "multi_material_images": 3}
    assert math.isnan(CollapseTally().compute()["collapse_rate"])


def test_confusion_matrix_matches_torchmetrics():
    from torchmetrics.classification import (MulticlassAccuracy, MulticlassF1Score,
                                             MulticlassJaccardIndex, MulticlassRecall)

    g = torch.Generator().manual_seed(0)
    n = 9
    target = torch.randint(0, 7, (4, 40, 50), generator=g)       # classes 7, 8 absent
    pred = torch.randint(0, 6, (4, 40, 50), generator=g)          # 6 predicted never
    pred[target == 3] = 3                                         # some agreement
    target[torch.rand(target.shape, generator=g) < 0.2] = 255     # ignored pixels
    cm = ConfusionMatrix(n)
    for i in range(4):  # accumulation over batches
        cm.update(pred[i], target[i])
    m = cm.compute()

    iou = MulticlassJaccardIndex(n, average=None, ignore_index=255)(pred, target)
    present = [c for c in range(n) if (target == c).any() or ((pred == c) & (target != 255)).any()]
    assert present == [0, 1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(np.array(m["per_class_iou"])[present], iou[present].numpy(), rtol=1e-6)
    assert all(math.isnan(m["per_class_iou"][c]) for c in (7, 8))
    assert m["mIoU"] == pytest.approx(iou[present].mean().item(), rel=1e-6)
    assert m["pixel_accuracy"] == pytest.approx(
        MulticlassAccuracy(n, average="micro", ignore_index=255)(pred, target).item(), rel=1e-6)
    recall = MulticlassRecall(n, average=None, ignore_index=255)(pred, target)
    in_target = [c for c in range(n) if (target == c).any()]
    assert m["mean_accuracy"] == pytest.approx(recall[in_target].mean().item(), rel=1e-6)
    f1 = MulticlassF1Score(n, average=None, ignore_index=255)(pred, target)
    assert m["mDice"] == pytest.approx(f1[present].mean().item(), rel=1e-6)


def test_confusion_matrix_rejects_bad_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="0..2"):
        cm.update(np.array([5]), np.array([1]))
    with pytest.raises(ValueError, match="pixels"):
        cm.update(np.zeros(3), np.zeros(4))


def _lrs(name, args, epochs=2, iters=5, lr=0.1, optimizer="SGD"):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = (torch.optim.SGD([p], lr=lr, momentum=0.9) if optimizer == "SGD"
           else torch.optim.AdamW([p], lr=lr))
    sched = build_scheduler(name, opt, epochs, iters, args)
    out = []
    for _ in range(epochs * iters):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_poly_per_iteration_with_warmup_and_power():
    lrs = _lrs("Poly", {})
    assert lrs == pytest.approx([0.1 * (1 - t / 10) ** 0.9 for t in range(10)])
    lrs = _lrs("Poly", {"power": 2.0, "warmup_epochs": 1})
    assert lrs[:5] == pytest.approx([0.1 * (t + 1) / 5 for t in range(5)])
    assert lrs[5:] == pytest.approx([0.1 * (1 - t / 10) ** 2 for t in range(5, 10)])
    assert poly_factor(10, 10, 0.9, 0) == 0.0


def test_onecycle_follows_its_args():
    lrs = _lrs("OneCycle", {"div_factor": 10.0, "phase1": 0.3}, epochs=4, iters=10)
    assert lrs[0] == pytest.approx(0.01)
    assert int(np.argmax(lrs)) == round(0.3 * 40) - 1
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs[-1] < 0.01
    assert _lrs("OneCycle", {}, optimizer="AdamW")[0] == pytest.approx(0.1 / 25)



@pytest.mark.parametrize("name", ["Poly", "OneCycle"])
def test_a_resumed_schedule_keeps_its_position_and_takes_the_new_length(name):
    """Resume after 10 of 20 steps into a 40-step run (`--resume --epochs` extended): the lr
    continues from step 10 of the 40-step schedule, to its end, without an error."""
    def run(total: int, steps: int, state: dict | None = None):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        sched = build_scheduler(name, opt, total, 1, {})
        if state is not None:
            opt.load_state_dict(state[0])
            load_schedule_state(sched, state[1])
        lrs = []
        for _ in range(steps):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        return lrs, (opt.state_dict(), sched.state_dict())

    _, state = run(20, 10)
    resumed, _ = run(40, 30, state)
    uninterrupted, _ = run(40, 40)
    assert resumed == pytest.approx(uninterrupted[10:])

def test_scheduler_args_are_checked():
    with pytest.raises(ScheduleError, match=r"unknown argument\(s\) \['powr'\] for Poly"):
        _lrs("Poly", {"powr": 0.9})
    with pytest.raises(ScheduleError, match="OneCycle"):
        _lrs("OneCycle", {"max_lr": 1})
