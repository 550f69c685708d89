"""`qaconv index build`: extract a gallery's feature maps once into an on-disk index for `qaconv search`."""

from __future__ import annotations

import argparse
import time

from qaconv.config import InferenceConfig, add_flags, flag_names
from qaconv.config.flags import options_from

INFERENCE_NAMES = flag_names(InferenceConfig)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="build a gallery index (feature maps on disk) for qaconv search",
        description="Gallery indexes hold a gallery's float16 feature maps (memory-mapped when searched), "
        "global descriptors, image paths and the checkpoint's fingerprint. See docs/inference.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="index every image under a folder",
        description="Extract the feature maps of every image under --gallery "
        "(recursively: .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .tiff, .ppm, .pgm; hidden files are skipped).",
    )
    build.add_argument("--gallery", required=True, metavar="DIR", help="folder of gallery images")
    build.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    build.add_argument("--out", required=True, metavar="INDEX", help="index folder to write")
    add_flags(build, InferenceConfig, INFERENCE_NAMES)
    build.add_argument("--overwrite", action="store_true", help="replace an index already in --out")
    build.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave out images that cannot be read, with a warning naming them (default: stop at the first one)",
    )
    build.set_defaults(func=run)
    update = actions.add_parser(
        "update",
        help="bring an index up to date with its gallery without a full rebuild",
        description="Extract the images added to the gallery since the index was built and the ones changed since "
        "(another size or modification time), drop the removed ones, keep the others' maps. See docs/inference.md.",
    )
    update.add_argument("--index", required=True, metavar="INDEX", help="index folder to update")
    update.add_argument(
        "--gallery", metavar="DIR", help="folder of gallery images (default: the one the index was built from)"
    )
    update.add_argument("--checkpoint", help="checkpoint file or run folder (default: the one recorded in the index)")
    add_flags(update, InferenceConfig, INFERENCE_NAMES)
    update.add_argument(
        "--skip-bad-images", action="store_true", help="leave out new images that cannot be read, with a warning"
    )
    update.set_defaults(func=run_update)


def run(args: argparse.Namespace) -> int:
    from qaconv.inference import ReID
    from qaconv.inference.index import check_index_out

    options = options_from(InferenceConfig, args, INFERENCE_NAMES)
    check_index_out(args.out, args.overwrite)  # before the checkpoint loads
    start = time.perf_counter()
    reid = ReID.from_checkpoint(args.checkpoint, device=options.device, max_pixels=options.max_image_pixels)
    index = reid.build_index(
        args.gallery,
        args.out,
        batch_size=options.batch_size,
        num_workers=options.workers,
        overwrite=args.overwrite,
        skip_bad_images=args.skip_bad_images,
        progress=True,
    )
    c, h, w = index.maps.shape[1:]
    mib = index.maps.numel() * 2 / 2**20
    skipped = len(index.manifest.get("skipped", []))
    note = f", {skipped} unreadable image(s) skipped" if skipped else ""
    print(
        f"indexed {len(index)} images ({c}x{h}x{w} float16 maps, {mib:.1f} MiB{note}) to {index.root} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


def run_update(args: argparse.Namespace) -> int:
    from qaconv.inference import GalleryIndex, ReID

    options = options_from(InferenceConfig, args, INFERENCE_NAMES)
    start = time.perf_counter()
    index = GalleryIndex.open(args.index)
    checkpoint = args.checkpoint or index.recorded_checkpoint()
    reid = ReID.from_checkpoint(checkpoint, device=options.device, max_pixels=options.max_image_pixels)
    index, counts = reid.update_index(
        args.index,
        args.gallery,
        batch_size=options.batch_size,
        num_workers=options.workers,
        skip_bad_images=args.skip_bad_images,
        progress=True,
    )
    print(
        f"updated {index.root}: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed, "
        f"{counts['kept']} kept; {len(index)} images in {time.perf_counter() - start:.1f} s"
    )
    return 0
