"""One training epoch and one evaluation pass: plain functions, as in torchvision's references."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import distributed
from ..materials import IGNORE_INDEX
from .metrics import ConfusionMatrix
from .object_accuracy import ObjectTally
from .precision import FP32, Precision, autocast, to_memory_format

AUX_WEIGHT = 0.4  # auxiliary-head loss weight (PSPNet)


def _main_and_aux(output: torch.Tensor | tuple[torch.Tensor, ...]
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(output, (tuple, list)):
        return output[0], (output[1] if len(output) > 1 else None)
    return output, None


def _at_size(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits


def training_loss(model: nn.Module, criterion: nn.Module, image: torch.Tensor, target: torch.Tensor,
                  precision: Precision = FP32) -> torch.Tensor:
    """The loss of one training forward pass in `precision` (main head, plus the auxiliary
    head's at AUX_WEIGHT), logits at the target's size and in fp32 for the loss."""
    with autocast(image.device, precision):
        main, aux = _main_and_aux(model(image))
        loss = criterion(_at_size(main, target.shape[-2:]).float(), target)
        if aux is not None:
            loss = loss + AUX_WEIGHT * criterion(_at_size(aux, target.shape[-2:]).float(), target)
    return loss


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    loader: torch.utils.data.DataLoader, device: torch.device, epoch: int,
                    precision: Precision = FP32, log_every: int = 20, progress: bool = True,
                    on_log: Callable[[int, float, float], None] | None = None) -> dict[str, Any]:
    """Train one epoch, stepping the scheduler per iteration, in `precision` (the model
    must already be in its memory format).

    `on_log(global_step, loss, lr)` is called every `log_every` iterations (TensorBoard).
    Returns the mean loss over all processes, images/s, and the unknown-colour pixel count.
    """
    model.train()
    loss_sum, steps, images, unknown = 0.0, 0, 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch} train", disable=not progress, leave=False,
               dynamic_ncols=True)
    for i, (image, target, n_unknown, _) in enumerate(bar):
        image = to_memory_format(image.to(device, non_blocking=True), precision)
        target = target.to(device, non_blocking=True)
        loss = training_loss(model, criterion, image, target, precision)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch}, iteration {i}: loss is {loss.item()}; "
                                     "lower optimizer.args.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        value = loss.item()
        loss_sum += value
        steps += 1
        images += image.shape[0]
        unknown += int(n_unknown.sum())
        lr = optimizer.param_groups[-1]["lr"]
        bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
        if on_log is not None and (i + 1) % log_every == 0:
            on_log(i, value, lr)
    seconds = time.perf_counter() - start
    loss_sum, steps, images, unknown = distributed.all_reduce_sum(
        [loss_sum, steps, images, unknown], device)
    return {"loss": loss_sum / max(steps, 1), "images": int(images),
            "images_per_s": images / seconds if seconds > 0 else math.nan, "seconds": seconds,
            "unknown_pixels": int(unknown)}


@torch.inference_mode()
def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device,
             num_classes: int, criterion: nn.Module | None = None, precision: Precision = FP32,
             progress: bool = True, keep_examples: int = 0, exclude_class: int | None = None,
             objects: list[list[dict]] | None = None,
             ) -> tuple[dict[str, Any], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """Whole-image evaluation -> (metrics incl. `loss`, first `keep_examples` (image, gt, pred)).

    `objects`: the boxed objects of each sample in loader order; adds object accuracy.

    A batch of equally sized images runs as one; a padded batch (images of different sizes)
    runs image by image at each one's own size, because the padding would change what the
    network sees (global pooling in ASPP/PSP, for one): the metrics do not depend on the
    batch size or on which images share a batch."""
    model.eval()
    confusion = ConfusionMatrix(num_classes, device=device, exclude=exclude_class)
    loss_sum, scored = 0.0, 0  # loss summed per image, images scored
    examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    tally = ObjectTally(num_classes) if objects is not None else None
    position = 0  # samples seen, in loader order
    for image, target, _, sizes in tqdm(loader, desc="validate", disable=not progress,
                                        leave=False, dynamic_ncols=True):
        image = to_memory_format(image.to(device, non_blocking=True), precision)
        target = target.to(device, non_blocking=True)
        if all(tuple(size) == tuple(image.shape[-2:]) for size in sizes.tolist()):
            parts = [(image, target)]
        else:
            parts = [(image[k:k + 1, :, :h, :w], target[k:k + 1, :h, :w])
                     for k, (h, w) in enumerate(sizes.tolist())]
        for part, part_target in parts:
            with autocast(device, precision):
                logits = _at_size(_main_and_aux(model(part))[0], part_target.shape[-2:]).float()
                labelled = (part_target != IGNORE_INDEX).flatten(1).any(dim=1)
                if criterion is not None and labelled.any():  # an all-ignore image has no loss
                    loss_sum += float(criterion(logits[labelled], part_target[labelled])) * int(labelled.sum())
                    scored += int(labelled.sum())
            pred = logits.argmax(dim=1)
            confusion.update(pred, part_target)
            if tally is not None:
                for k, ids in enumerate(pred.cpu().numpy()):
                    tally.add(ids, objects[position + k])
            position += part.shape[0]
            for k in range(min(keep_examples - len(examples), part.shape[0])):
                examples.append((part[k].float().cpu(), part_target[k].cpu(), pred[k].cpu()))
    confusion.all_reduce()
    metrics = confusion.compute()
    loss_sum, scored = distributed.all_reduce_sum([loss_sum, scored], device)
    metrics["loss"] = loss_sum / scored if scored else math.nan
    if tally is not None:
        n = num_classes
        sums = distributed.all_reduce_sum([*tally.total.tolist(), *tally.correct.tolist()], device)
        tally.total[:], tally.correct[:] = sums[:n], sums[n:]
        metrics.update(tally.compute())
    return metrics, examples
