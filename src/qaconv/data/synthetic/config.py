"""`SynthConfig`: the options that define a synthetic data set, checked once when it is made."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from qaconv.data.synthetic.styles import STYLES
from qaconv.errors import QAConvError

_INTEGERS = ("num_ids", "num_cams", "seed", "images_per_id", "height", "width", "quality")


@dataclass(frozen=True)
class SynthConfig:
    """Everything the bytes of a data set depend on (docs/synthetic.md, "Options").

    How it is written (worker processes, replacing an earlier set) is up to `generate` and changes
    no byte. `style` is stored upper-case; an invalid value raises a one-line QAConvError.
    """

    num_ids: int = 100
    num_cams: int = 6
    seed: int = 0
    style: str = "A"
    images_per_id: int = 10
    height: int = 128
    width: int = 64
    quality: int = 90
    junk_fraction: float = 0.1
    distractor_fraction: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "style", str(self.style).upper())
        for name in _INTEGERS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise QAConvError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("junk_fraction", "distractor_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
                raise QAConvError(f"{name} must be in [0, 1], got {value}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        if self.style not in STYLES:
            raise QAConvError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if not 2 <= self.num_ids <= 9999:
            raise QAConvError(f"num_ids must be in 2..9999 (4-digit Market pids), got {self.num_ids}")
        if not 2 <= self.num_cams <= 9:
            raise QAConvError(f"num_cams must be in 2..9 (one digit in Market file names), got {self.num_cams}")
        if self.seed < 0:
            raise QAConvError(f"seed must be >= 0, got {self.seed}")
        if self.images_per_id < 4:
            raise QAConvError(f"images_per_id must be at least 4 (2 cameras x 2 images), got {self.images_per_id}")
        if self.height < 32 or self.width < 16:
            raise QAConvError(f"image size must be at least 32x16 (height x width), got {self.height}x{self.width}")
        if not 1 <= self.quality <= 100:
            raise QAConvError(f"JPEG quality must be in 1..100, got {self.quality}")
