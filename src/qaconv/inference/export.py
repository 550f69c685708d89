"""Export the feature extractor and the eval-mode matcher to TorchScript or ONNX, and check the copies.

Two files per format in the output folder, plus `export.json` (inputs, outputs, model config,
checkpoint fingerprint and the largest difference from the PyTorch model found by the check):

    feature_extractor.pt|.onnx   images [N, 3, H, W] float32 RGB in [0, 1], NOT mean/std normalised
                                 -> feature_maps [N, C, h, w] (L2-normalised over C)
    matcher.pt|.onnx             (prob [P, C, h, w], gal [G, C, h, w]) -> scores [P, G] (QAConv logits)

The matcher is exported as `qaconv.matching.EvalScorer` (from `QAConv.eval_affine()`): the
eval-mode QAConv with its two batch norms folded into one affine map, the score chain that block
scoring uses too. It computes all P x G x hw x hw similarities at once, so callers score large
galleries in blocks. The folder is written under a hidden name and swapped into place when checked;
an earlier export is replaced only with `overwrite`. ONNX needs the optional `onnx` package (and
`onnxruntime` to run or check the files): `pip install 'qaconv[onnx]'`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qaconv.errors import QAConvError
from qaconv.folders import EXPORT, check_output, mark
from qaconv.io import folder_swap
from qaconv.lock import FolderLock
from qaconv.matching import EvalScorer

if TYPE_CHECKING:
    from qaconv.inference.api import ReID

FORMATS = ("torchscript", "onnx")
EXTRACTOR = "feature_extractor"
MATCHER = "matcher"
RECORD = "export.json"
ONNX_OPSET = 17
_SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


def require_onnx(purpose: str = "ONNX export") -> None:
    """Raise a QAConvError naming the package to install when `onnx` is missing."""
    if importlib.util.find_spec("onnx") is None:
        raise QAConvError(
            f"{purpose} needs the optional package 'onnx', which is not installed: pip install onnx "
            "(or pip install 'qaconv[onnx]', which also installs onnxruntime to run the exported files)"
        )


def _examples(reid: ReID) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, reid.config.height, reid.config.width, generator=generator)
    m = reid.matcher
    prob = F.normalize(torch.randn(2, m.num_features, m.height, m.width, generator=generator), dim=1)
    gal = F.normalize(torch.randn(3, m.num_features, m.height, m.width, generator=generator), dim=1)
    return images, prob, gal


def _export_torchscript(model: nn.Module, matcher: EvalScorer, images: Tensor, files: dict[str, Path]) -> None:
    # check_trace off: export_model compares the saved file with the model anyway
    modules = {EXTRACTOR: torch.jit.trace(model, images, check_trace=False), MATCHER: torch.jit.script(matcher)}
    for name, module in modules.items():
        # through a Python file: saved to a path, a full disk aborts the process inside torch's writer
        with open(files[name], "wb") as f:
            torch.jit.save(module, f)


def _export_onnx(
    model: nn.Module, matcher: EvalScorer, images: Tensor, prob: Tensor, gal: Tensor, files: dict[str, Path]
) -> None:
    torch.onnx.export(
        model,
        (images,),
        str(files[EXTRACTOR]),
        dynamo=False,
        opset_version=ONNX_OPSET,
        input_names=["images"],
        output_names=["feature_maps"],
        dynamic_axes={"images": {0: "batch"}, "feature_maps": {0: "batch"}},
    )
    torch.onnx.export(
        matcher,
        (prob, gal),
        str(files[MATCHER]),
        dynamo=False,
        opset_version=ONNX_OPSET,
        input_names=["prob", "gal"],
        output_names=["scores"],
        dynamic_axes={"prob": {0: "num_prob"}, "gal": {0: "num_gal"}, "scores": {0: "num_prob", 1: "num_gal"}},
    )


def _run_exported(
    fmt: str, files: dict[str, Path], images: Tensor, prob: Tensor, gal: Tensor
) -> tuple[Tensor, Tensor] | None:
    """Outputs of the exported files on the examples; None when ONNX Runtime is not installed."""
    if fmt == "torchscript":
        extractor, matcher = torch.jit.load(str(files[EXTRACTOR])), torch.jit.load(str(files[MATCHER]))
        with torch.no_grad():
            return extractor(images), matcher(prob, gal)
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    def session(name: str) -> Any:
        return onnxruntime.InferenceSession(str(files[name]), providers=["CPUExecutionProvider"])

    maps = session(EXTRACTOR).run(None, {"images": images.numpy()})[0]
    scores = session(MATCHER).run(None, {"prob": prob.numpy(), "gal": gal.numpy()})[0]
    return torch.from_numpy(maps), torch.from_numpy(scores)


def check_export_out(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an --out that is a file, a non-empty folder that is not an export, or an export without overwrite."""
    own = [RECORD] + [f"{name}{suffix}" for name in (EXTRACTOR, MATCHER) for suffix in _SUFFIX.values()]
    return check_output(out, EXPORT, "--out", overwrite=overwrite, own=own)


def export_model(reid: ReID, fmt: str, out: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the extractor and matcher of `reid` in `fmt` to folder `out`; returns the export.json record.

    The exported files run on the CPU in float32. Each export is checked against the PyTorch model on
    random inputs (`max_abs_diff`; None for ONNX without onnxruntime); non-finite outputs are refused.
    An earlier export in `out` is replaced only with `overwrite`, and only once the new one is checked;
    `out` is locked meanwhile (a second export into it refuses at once).
    """
    if fmt not in FORMATS:
        raise QAConvError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        require_onnx()
    with FolderLock.beside(out, "qaconv export"):
        out = check_export_out(out, overwrite)
        with folder_swap(out) as folder:
            files = {name: folder / f"{name}{_SUFFIX[fmt]}" for name in (EXTRACTOR, MATCHER)}
            diffs = _export_and_check(reid, fmt, files)
            record = _record(reid, fmt, files, diffs)
            (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")
            mark(folder, EXPORT)
    return record


def _export_and_check(reid: ReID, fmt: str, files: dict[str, Path]) -> dict[str, float] | None:
    """Write the two files and return their largest differences from the PyTorch model (None: not checked)."""
    model = reid.model.to("cpu").eval()
    matcher = reid.matcher.to("cpu").eval_affine().eval()
    images, prob, gal = _examples(reid)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch >= 2.9 marks torch.jit and the TorchScript-based ONNX exporter deprecated; both still work
            warnings.simplefilter("ignore", DeprecationWarning)
            expected = dict(zip((EXTRACTOR, MATCHER), (model(images), matcher(prob, gal)), strict=True))
            _check_finite(expected, "the model's")
            if fmt == "torchscript":
                _export_torchscript(model, matcher, images, files)
            else:
                _export_onnx(model, matcher, images, prob, gal, files)
            got = _run_exported(fmt, files, images, prob, gal)
    finally:
        reid.model.to(reid.device)
        reid.matcher.to(reid.device)
    if got is None:
        return None
    got = dict(zip(expected, got, strict=True))
    _check_finite(got, "the exported")
    return {name: float((got[name].float() - output.float()).abs().max()) for name, output in expected.items()}


def _check_finite(outputs: dict[str, Tensor], whose: str) -> None:
    bad = [name for name, output in outputs.items() if not bool(torch.isfinite(output).all())]
    if bad:
        raise QAConvError(f"{whose} {' and '.join(bad)} gives non-finite outputs (NaN or inf); nothing was exported")


def _record(reid: ReID, fmt: str, files: dict[str, Path], diffs: dict[str, float] | None) -> dict[str, Any]:
    m = reid.matcher
    maps_shape = [m.num_features, m.height, m.width]
    return {
        "format": fmt,
        "files": {name: path.name for name, path in files.items()},
        "inputs": {
            EXTRACTOR: {
                "images": ["N", 3, reid.config.height, reid.config.width],
                "note": "float32 RGB in [0, 1], resized (bicubic) to the input size, NOT mean/std normalised",
            },
            MATCHER: {"prob": ["P", *maps_shape], "gal": ["G", *maps_shape]},
        },
        "outputs": {EXTRACTOR: {"feature_maps": ["N", *maps_shape]}, MATCHER: {"scores": ["P", "G"]}},
        "onnx_opset": ONNX_OPSET if fmt == "onnx" else None,
        "model_config": dataclasses.asdict(reid.config),
        "checkpoint": str(reid.checkpoint) if reid.checkpoint else None,
        "fingerprint": reid.fingerprint,
        "torch": torch.__version__,
        "max_abs_diff": diffs,
    }
