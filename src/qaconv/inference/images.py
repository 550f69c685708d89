"""Images as the inference API takes them: paths, PIL images or uint8 arrays, one or a list.

`load` turns one into an RGB PIL image (a bad file raises QAConvError naming it); `ImageInputs`
is the Dataset that feeds them to `qaconv.engine.features.feature_map_batches`, either stopping
at the first unreadable image or marking it and going on (gallery indexes with --skip-bad-images).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from qaconv.errors import QAConvError
from qaconv.image_reader import DEFAULT_MAX_PIXELS, read_image, to_rgb
from qaconv.io import IMAGE_EXTENSIONS, list_images

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray
Images = ImageLike | Sequence[ImageLike] | Tensor


def load(image: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS, for_size: int | None = None) -> Image.Image:
    """One image as an upright RGB PIL image (paths and bytes are read by `qaconv.image_reader.read_image`, for a
    model whose longest input side is `for_size` when given; a bad file raises QAConvError naming it; a PIL image
    given in memory is taken as it is, converted to RGB)."""
    if isinstance(image, (str, os.PathLike, bytes)):
        return read_image(image, max_pixels=max_pixels, for_size=for_size)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise QAConvError(f"image arrays must be HxW or HxWxC uint8, got {image.dtype} {list(image.shape)}")
        return to_rgb(Image.fromarray(image))
    raise QAConvError(f"expected an image path, PIL image or uint8 array, got {type(image).__name__}")


def as_list(images: Images) -> list[ImageLike]:
    """One image or a sequence of them as a list."""
    if isinstance(images, (str, os.PathLike, bytes, Image.Image)) or (
        isinstance(images, np.ndarray) and images.ndim < 4
    ):
        return [images]
    return list(images)


class ImageInputs(Dataset):
    """Items (transform(image), readable, error message) of images given as paths, PIL images or arrays.

    With `skip_errors`, an image that cannot be read gives a zero image, readable False and the
    error's message instead of raising, so one bad file does not stop a whole gallery.
    """

    def __init__(
        self,
        items: Sequence[ImageLike],
        transform: Callable,
        *,
        skip_errors: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        for_size: int | None = None,
    ) -> None:
        self.items = list(items)
        self.transform = transform
        self.skip_errors = skip_errors
        self.max_pixels = max_pixels
        self.for_size = for_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, bool, str]:
        try:
            image = self.transform(load(self.items[index], self.max_pixels, self.for_size))
        except QAConvError as exc:
            if not self.skip_errors:
                raise
            blank = torch.zeros_like(self.transform(Image.new("RGB", (8, 16))))  # the transform's output size
            return blank, False, str(exc)
        return image, True, ""


def gallery_files(gallery: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[str | None, list[str]]:
    """(the gallery folder, or None for a list; the absolute image paths) of a folder or a list of files."""
    if isinstance(gallery, (str, os.PathLike)):
        folder = Path(gallery).expanduser()
        if not folder.is_dir():
            raise QAConvError(f"gallery folder not found: {folder}")
        names = list_images(folder, recursive=True)
        if not names:
            raise QAConvError(f"no images in gallery folder {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        root = folder.resolve()
        return str(root), [str(root / name) for name in names]
    paths = [str(Path(p).expanduser().resolve()) for p in gallery]
    if not paths:
        raise QAConvError("no gallery images given")
    return None, paths
