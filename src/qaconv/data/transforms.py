"""Image transforms of the QAConv-GS recipe (the published code's augmentation, docs/training.md), on PIL
images, without torchvision.

Training, in this order (the published code's `get_data`):

    ToRGB -> Resize((H, W), BICUBIC) -> Pad(10, black) -> RandomCrop((H, W))
    -> RandomHorizontalFlip(0.5) -> RandomRotation(5, NEAREST, black, no expand)
    -> ColorJitter(brightness=(0.5, 2), contrast=(0.5, 2), saturation=(0.5, 2), hue=(-0.1, 0.1))
    -> RandomOcclusion(min_size=0, max_size=0.8) -> ToTensor   (float [3, H, W] in [0, 1], NO Normalize)

The padding is the paper's 10 pixels at its width of 128 and scales with other widths (5 at 64, 2 at 32).

Test (and graph-sampling) transform: ToRGB -> Resize((H, W), BICUBIC) -> ToTensor.

ColorJitter applies its four adjustments in a fresh random order per image, as torchvision's
does (and with the same PIL operations: ImageEnhance.Brightness / Contrast / Color and a hue
shift in HSV), so the augmentation matches the reference.

Randomness. Every random transform draws from an explicit `numpy.random.Generator`. A
`Compose` owns one generator and passes it to its members; `Compose.reseed(seed)` replaces
it. With `seed=None` the generator's seed is drawn from torch's global RNG when the
transform is built, so `seed_everything(s)` before building makes a run reproducible.
In DataLoader workers, `qaconv.data.loader.worker_init_fn` reseeds the dataset's transform
from torch's per-worker seed (`get_worker_info().seed`, which is base_seed + worker_id and
changes every epoch unless workers are persistent), so no two workers repeat each other's
augmentations and a seeded run gives the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from qaconv.errors import QAConvError
from qaconv.image_reader import to_rgb

__all__ = [
    "ColorJitter",
    "Compose",
    "Pad",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomOcclusion",
    "RandomRotation",
    "Resize",
    "ToRGB",
    "ToTensor",
    "build_test_transform",
    "build_train_transform",
    "make_generator",
    "to_rgb",
]


def make_generator(seed: int | None = None) -> np.random.Generator:
    """A NumPy generator from `seed`, or (seed=None) from a number drawn from torch's global RNG."""
    if seed is None:
        seed = int(torch.randint(0, 2**63 - 1, (1,)).item())
    return np.random.default_rng(seed)


class ToRGB:
    """PIL image of any mode -> RGB (see `to_rgb`)."""

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        return to_rgb(img)


class Resize:
    """Resize to exactly (height, width), bicubic by default (PIL's resize, antialiased)."""

    def __init__(self, height: int, width: int, interpolation: int = Image.BICUBIC):
        self.height, self.width, self.interpolation = int(height), int(width), interpolation

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        return img.resize((self.width, self.height), self.interpolation)


class Pad:
    """Pad every side by `padding` pixels of a constant colour (black by default)."""

    def __init__(self, padding: int = 10, fill: tuple[int, int, int] = (0, 0, 0)):
        self.padding, self.fill = int(padding), tuple(fill)

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        return ImageOps.expand(img, border=self.padding, fill=self.fill) if self.padding else img


class _Random:
    """Base of the random transforms: draws from the generator passed in, else its own."""

    def __init__(self, seed: int | None = None):
        self._seed = seed
        self._rng: np.random.Generator | None = None  # made on first standalone use

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = make_generator(self._seed)
        return self._rng

    def reseed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        return self.apply(img, self.rng if rng is None else rng)

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        raise NotImplementedError


class RandomCrop(_Random):
    """A (height, width) window at a uniformly random position (top in [0, H_in - height])."""

    def __init__(self, height: int, width: int, seed: int | None = None):
        super().__init__(seed)
        self.height, self.width = int(height), int(width)

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        if h < self.height or w < self.width:
            raise QAConvError(f"RandomCrop: image {w}x{h} is smaller than the crop {self.width}x{self.height}")
        top = int(rng.integers(0, h - self.height + 1))
        left = int(rng.integers(0, w - self.width + 1))
        return img.crop((left, top, left + self.width, top + self.height))


class RandomHorizontalFlip(_Random):
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        self.p = float(p)

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        return img.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < self.p else img


class RandomRotation(_Random):
    """Rotate about the centre by an angle uniform in [-degrees, degrees] (nearest, black fill, same size)."""

    def __init__(self, degrees: float = 5.0, fill: tuple[int, int, int] = (0, 0, 0), seed: int | None = None):
        super().__init__(seed)
        self.degrees, self.fill = float(degrees), tuple(fill)

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        angle = float(rng.uniform(-self.degrees, self.degrees))
        return img.rotate(angle, resample=Image.NEAREST, expand=False, fillcolor=self.fill)


class ColorJitter(_Random):
    """torchvision's ColorJitter on PIL images: factors uniform in the given ranges, the four
    adjustments applied in a random order per image (random_order=False: brightness, contrast,
    saturation, hue). As in torchvision, a range that is the identity ((1, 1), or (0, 0) for hue)
    switches its adjustment off and draws no number for it."""

    def __init__(
        self,
        brightness: tuple[float, float] = (0.5, 2.0),
        contrast: tuple[float, float] = (0.5, 2.0),
        saturation: tuple[float, float] = (0.5, 2.0),
        hue: tuple[float, float] = (-0.1, 0.1),
        random_order: bool = True,
        seed: int | None = None,
    ):
        super().__init__(seed)
        if not -0.5 <= hue[0] <= hue[1] <= 0.5:
            raise QAConvError(f"ColorJitter: hue range must lie in [-0.5, 0.5], got {hue}")
        identity = ((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0))
        ranges = (brightness, contrast, saturation, hue)
        self.ranges = [
            None if tuple(map(float, r)) == e else (float(r[0]), float(r[1]))
            for r, e in zip(ranges, identity, strict=True)
        ]
        self.random_order = random_order

    @staticmethod
    def adjust_hue(img: Image.Image, factor: float) -> Image.Image:
        """Shift the hue channel by factor x 255 (wrapping), as torchvision's PIL backend does."""
        h, s, v = img.convert("HSV").split()
        shifted = np.asarray(h, dtype=np.uint8) + np.uint8(int(math.trunc(factor * 255)) % 256)
        return Image.merge("HSV", (Image.fromarray(shifted, "L"), s, v)).convert("RGB")

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        order = rng.permutation(4) if self.random_order else range(4)
        factors = [None if r is None else float(rng.uniform(*r)) for r in self.ranges]
        for i in order:
            f = factors[i]
            if f is None:
                continue
            if i == 0:
                img = ImageEnhance.Brightness(img).enhance(f)
            elif i == 1:
                img = ImageEnhance.Contrast(img).enhance(f)
            elif i == 2:
                img = ImageEnhance.Color(img).enhance(f)
            else:
                img = self.adjust_hue(img, f)
        return img


class RandomOcclusion(_Random):
    """Paste one white square (the reference's RandomOcclusion), with probability 1 unless max_size == 0.

    With S = min(H, W): side s = randint(max(1, int(S * min_size)), int(S * max_size)) (high
    exclusive), x0 = randint(W - s), y0 = randint(H - s); the square covers [y0, y0 + s) x [x0, x0 + s).
    For S = 128 and the defaults, s is in [1, 101].
    """

    def __init__(
        self,
        min_size: float = 0.0,
        max_size: float = 0.8,
        fill: tuple[int, int, int] = (255, 255, 255),
        seed: int | None = None,
    ):
        super().__init__(seed)
        if not (0 <= min_size <= 1 and 0 <= max_size <= 1 and (max_size == 0 or min_size < max_size)):
            raise QAConvError(
                f"RandomOcclusion: need 0 <= min_size < max_size <= 1 (or max_size == 0 to disable), "
                f"got min_size={min_size}, max_size={max_size}"
            )
        self.min_size, self.max_size, self.fill = float(min_size), float(max_size), tuple(fill)

    def side_range(self, height: int, width: int) -> tuple[int, int]:
        """[low, high) of the square's side for an image of this size."""
        s = min(height, width)
        low = max(1, int(s * self.min_size))
        return low, max(low + 1, int(s * self.max_size))

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if self.max_size == 0:
            return img
        w, h = img.size
        low, high = self.side_range(h, w)
        s = int(rng.integers(low, high))
        if s >= min(w, h):  # only for degenerate sizes (an image 1 pixel wide)
            return img
        x0 = int(rng.integers(w - s))
        y0 = int(rng.integers(h - s))
        img = img.copy()
        img.paste(self.fill, (x0, y0, x0 + s, y0 + s))
        return img


class ToTensor:
    """RGB PIL image -> float32 tensor [3, H, W] in [0, 1] (no mean/std normalisation)."""

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        array = np.array(to_rgb(img), dtype=np.uint8)  # a writable copy
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


class Compose:
    """Apply transforms in order, handing every one this object's generator."""

    def __init__(self, transforms: Iterable[Callable], seed: int | None = None):
        self.transforms = list(transforms)
        self.rng = make_generator(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream (DataLoader workers call this through worker_init_fn)."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor | Image.Image:
        """Transform `img`, drawing from `rng` when given (a per-image generator), else this object's stream."""
        rng = self.rng if rng is None else rng
        for t in self.transforms:
            img = t(img, rng)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(type(t).__name__ for t in self.transforms) + ")"


def build_train_transform(
    height: int = 384,
    width: int = 128,
    padding: int | None = None,
    flip: float = 0.5,
    rotation: float = 5.0,
    color_jitter: bool = True,
    min_size: float = 0.0,
    max_size: float = 0.8,
    seed: int | None = None,
) -> Compose:
    """The published code's training augmentation at (height, width): PIL image -> float tensor [3, H, W].

    padding=None scales the paper's 10 pixels at width 128 to the input width (round(10 * width / 128)), so
    the random crop shifts a small input by the same fraction as the paper's (10 px would move a 32-pixel-wide
    input by a third of its width and keep a from-scratch model from learning). padding=0, flip=0,
    rotation=0, color_jitter=False or max_size=0 switch the matching step off.
    """
    _check_size(height, width)
    if padding is None:
        padding = max(1, round(10 * width / 128))
    steps: list[Callable] = [ToRGB(), Resize(height, width), Pad(padding), RandomCrop(height, width)]
    if flip > 0:
        steps.append(RandomHorizontalFlip(flip))
    if rotation > 0:
        steps.append(RandomRotation(rotation))
    if color_jitter:
        steps.append(ColorJitter())
    steps += [RandomOcclusion(min_size, max_size), ToTensor()]
    return Compose(steps, seed=seed)


def build_test_transform(height: int = 384, width: int = 128) -> Compose:
    """Bicubic resize to (height, width), then a float tensor [3, H, W] in [0, 1]."""
    _check_size(height, width)
    return Compose([ToRGB(), Resize(height, width), ToTensor()], seed=0)


def _check_size(height: int, width: int) -> None:
    if int(height) < 1 or int(width) < 1:
        raise QAConvError(f"image size must be positive, got height={height}, width={width}")
