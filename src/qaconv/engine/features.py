"""Feature-map extraction: images -> L2-normalised maps [N, C, h, w], batched, in eval mode, without grad.

One loop (`feature_map_batches`) serves evaluation, the graph sampler's representatives and inference
(`extract_feature_maps` collects its batches for a list of image records). On CUDA the
forward runs under autocast (float16 by default); on CPU in float32 unless bfloat16 is asked for.
Maps are returned on the CPU (float16 storage halves memory for large galleries).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from qaconv.data.loader import ImageDataset, make_loader
from qaconv.data.transforms import build_test_transform
from qaconv.device import amp_dtype


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """autocast for float16/bfloat16 forwards on the device's type; a no-op for float32 or None."""
    if dtype is None or dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def feature_map_batches(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    out_dtype: torch.dtype = torch.float32,
    progress: str | None = None,
) -> Iterator[tuple[torch.Tensor, list[Any]]]:
    """Yield (maps [B, C, h, w] on the CPU, the batch's other fields) for the items (image, *fields) of
    `dataset`, in order: the one extraction loop of evaluation, the graph sampler and inference.

    The model is put in eval mode while batches are drawn and restored afterwards. `autocast_dtype`
    None means float16 on CUDA and float32 elsewhere. `progress` labels a progress bar, drawn only
    when stderr is a terminal (None: no bar).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if autocast_dtype is None:
        autocast_dtype = amp_dtype("auto", device)  # the one precision policy: float16 on CUDA, off elsewhere
    loader = make_loader(dataset, batch_size=batch_size, num_workers=num_workers, device=device)
    was_training = model.training
    model.eval()
    try:
        # disable=None: tqdm draws nothing when stderr is not a terminal (logs, pipes)
        for images, *fields in tqdm(loader, desc=progress, disable=None if progress else True, leave=False):
            with autocast_context(device, autocast_dtype):
                maps = model(images.to(device, non_blocking=True))
            yield maps.to("cpu", out_dtype), fields
    finally:
        model.train(was_training)


def extract_feature_maps(
    model: nn.Module,
    records: Sequence[Any],
    *,
    height: int,
    width: int,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    out_dtype: torch.dtype = torch.float32,
    progress: str | None = None,
) -> torch.Tensor:
    """Feature maps of `records` (objects with .path, or (path, pid, camid) tuples) in their order.

    Images are decoded and resized by the test transform; see `feature_map_batches` for the rest.
    """
    batches = feature_map_batches(
        model,
        ImageDataset(records, build_test_transform(height, width), for_size=max(height, width)),
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        autocast_dtype=autocast_dtype,
        out_dtype=out_dtype,
        progress=progress,
    )
    chunks = [maps for maps, _ in batches]
    if not chunks:
        return torch.empty(0)
    return torch.cat(chunks)
