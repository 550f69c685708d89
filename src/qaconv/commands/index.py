"""`qaconv index build`: extract a gallery's feature maps once into an on-disk index for `qaconv search`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from qaconv.config import IndexConfig, InferenceConfig, add_flags, flag_names
from qaconv.config.flags import options_from
from qaconv.errors import QAConvError

INFERENCE_NAMES = flag_names(InferenceConfig)
INDEX_NAMES = flag_names(IndexConfig)


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
        "(recursively: .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .tiff, .ppm, .pgm; hidden files are skipped), "
        "with a location first stage for fast search (--first-stage) and in shards (--shard-by) if asked.",
    )
    build.add_argument("--gallery", required=True, metavar="DIR", help="folder of gallery images")
    build.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    build.add_argument("--out", required=True, metavar="INDEX", help="index folder to write")
    add_flags(build, IndexConfig, INDEX_NAMES)
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
        "(another size or modification time), drop the removed ones, keep the others' maps (and the first stage's "
        "training); in a shard set, only the shards whose images changed. See docs/inference.md.",
    )
    update.add_argument("--index", required=True, metavar="INDEX", help="index folder or shard set to update")
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
    from qaconv.inference.shards import build_shards

    options = options_from(IndexConfig, args, INDEX_NAMES)
    if options.shard_by == "size" and options.shard_size is None:
        raise QAConvError("--shard-by size needs --shard-size N (images per shard)")
    if options.shard_by is None:
        check_index_out(args.out, args.overwrite)  # before the checkpoint loads
    start = time.perf_counter()
    reid = ReID.from_checkpoint(args.checkpoint, device=options.device, max_pixels=options.max_image_pixels)
    build = {
        "batch_size": options.batch_size,
        "num_workers": options.workers,
        "overwrite": args.overwrite,
        "skip_bad_images": args.skip_bad_images,
        "progress": True,
        "first_stage": options.first_stage,
    }
    if options.shard_by is not None:
        gallery = build_shards(reid, args.gallery, args.out, shard_by=options.shard_by,
                               shard_size=options.shard_size, **build)  # fmt: skip
        indexes = gallery.shards
    else:
        indexes = (reid.build_index(args.gallery, args.out, **build),)
    for index in indexes:
        print(describe_index(index))
    if len(indexes) > 1:
        print(f"{sum(len(i) for i in indexes)} images in {len(indexes)} shards in {args.out}")
    print(f"in {time.perf_counter() - start:.1f} s")
    return 0


def describe_index(index: Any) -> str:
    c, h, w = index.maps.shape[1:]
    mib = index.maps.numel() * 2 / 2**20
    skipped = len(index.manifest.get("skipped", []))
    notes = [f"{c}x{h}x{w} float16 maps, {mib:.1f} MiB"]
    if index.manifest.get("first_stage"):
        from qaconv.inference.first_stage import path_of

        stage_mib = path_of(index.root).stat().st_size / 2**20
        notes.append(f"location first stage {stage_mib:.1f} MiB")
    if skipped:
        notes.append(f"{skipped} unreadable image(s) skipped")
    return f"indexed {len(index)} images ({', '.join(notes)}) to {index.root}"


def run_update(args: argparse.Namespace) -> int:
    from qaconv.inference import ReID
    from qaconv.inference.shards import SHARDS_FILE, Gallery, update_shards

    options = options_from(InferenceConfig, args, INFERENCE_NAMES)
    start = time.perf_counter()
    gallery = Gallery.open(args.index)
    checkpoint = args.checkpoint or gallery.recorded_checkpoint()
    reid = ReID.from_checkpoint(checkpoint, device=options.device, max_pixels=options.max_image_pixels)
    build = {"batch_size": options.batch_size, "num_workers": options.workers,
             "skip_bad_images": args.skip_bad_images, "progress": True}  # fmt: skip
    if (Path(args.index) / SHARDS_FILE).is_file():
        gallery, counts = update_shards(reid, args.index, args.gallery, **build)
        size = len(gallery)
    else:
        index, counts = reid.update_index(args.index, args.gallery, **build)
        size = len(index)
    shards = f", {counts['shards updated']} shard(s) updated" if "shards updated" in counts else ""
    print(
        f"updated {args.index}: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed, "
        f"{counts['kept']} kept{shards}; {size} images in {time.perf_counter() - start:.1f} s"
    )
    return 0
