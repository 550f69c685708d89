"""`qaconv export`: the feature extractor and the eval-mode matcher as TorchScript or ONNX files."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the feature extractor and matcher to TorchScript or ONNX",
        description="Write feature_extractor and matcher files (eval mode, CPU, float32) and export.json to --out, "
        "and check them against the PyTorch model on random inputs. An earlier export in --out is replaced only with "
        "--overwrite. ONNX needs the optional packages onnx "
        "(to export) and onnxruntime (to check and run): pip install 'qaconv[onnx]'. See docs/inference.md.",
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    parser.add_argument("--format", required=True, choices=["torchscript", "onnx"], help="file format")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace an export already in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.inference import ReID, export_model
    from qaconv.inference.export import check_export_out, require_onnx

    if args.format == "onnx":
        require_onnx()  # before the (slow) checkpoint load
    check_export_out(args.out, args.overwrite)
    reid = ReID.from_checkpoint(args.checkpoint, device="cpu")
    record = export_model(reid, args.format, args.out, overwrite=args.overwrite)
    for name, file in record["files"].items():
        diff = record["max_abs_diff"]
        check = "not checked (install onnxruntime)" if diff is None else f"max |diff| vs PyTorch {diff[name]:.2e}"
        print(f"wrote {args.out}/{file}  ({check})")
    print(f"wrote {args.out}/export.json")
    return 0
