"""Build the glyph re-identification benchmark: Hangul syllables drawn in real Korean typefaces, MSMT17 layout.

A syllable is an identity and a typeface a camera. Training: `--train-ids` syllables, each drawn in
`--faces-per-id` print faces picked at random (benchmarks/glyphs/faces.py). Test: `--test-ids` other
syllables drawn in every brush, pen and handwriting face, `--queries-per-id` of them as queries and the rest
as the gallery. Syllables come from the 2,350 of KS X 1001, shuffled with `--seed`; no Han characters.
The result is read by `qaconv train --dataset msmt17 --data-dir DIR` (or `--dataset DIR/msmt17`):

    sudo apt-get install $(cat benchmarks/glyphs/packages.txt)      # once: the typefaces
    python -m benchmarks.glyphs.build --out data/glyphs             # data/glyphs/msmt17/, about a minute

The folder is built under a hidden name and renamed when complete, so an interrupted build never looks
finished. glyphs.json records the options, the faces behind every camera, the syllable behind every
identity and the pixel-cosine floor (benchmarks/glyphs/floor.py) that every result is printed beside.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.glyphs.faces import FONT_DIR, TEST_FACES, TRAIN_FACES, installed, ks_x_1001_syllables
from benchmarks.glyphs.floor import pixel_cosine_floor
from benchmarks.glyphs.render import draws, render
from qaconv.io import folder_swap

PACKAGES = Path(__file__).with_name("packages.txt")
_SPLIT = {"train": 0, "test": 1}


@dataclass(frozen=True)
class GlyphOptions:
    train_ids: int = 2000
    test_ids: int = 350
    faces_per_id: int = 16
    queries_per_id: int = 2
    size: int = 64
    seed: int = 0


@dataclass(frozen=True)
class Shot:
    """One image to draw: which split, identity, face (camera), syllable, and where it goes."""

    split: str
    pid: int
    camera: int
    face: str
    char: str
    rel: str


def plan(options: GlyphOptions, train_faces: list[Path], test_faces: list[Path]) -> dict[str, list[Shot]]:
    """Every image of the benchmark, by list file (train, query, gallery); the same for the same options."""
    o = options
    syllables = ks_x_1001_syllables()
    if o.train_ids + o.test_ids > len(syllables):
        raise SystemExit(f"--train-ids + --test-ids must be at most {len(syllables)} (the KS X 1001 syllables)")
    if o.faces_per_id > len(train_faces) or o.queries_per_id >= len(test_faces):
        raise SystemExit(
            f"found {len(train_faces)} print and {len(test_faces)} handwriting faces: --faces-per-id must be at most "
            f"the first and --queries-per-id below the second; install the fonts: sudo apt-get install "
            f"$(cat {PACKAGES})"
        )
    rng = np.random.default_rng(o.seed)
    order = rng.permutation(len(syllables))
    chosen = {"train": order[: o.train_ids], "test": order[o.train_ids : o.train_ids + o.test_ids]}
    lists: dict[str, list[Shot]] = {"train": [], "query": [], "gallery": []}
    for split, faces in (("train", train_faces), ("test", test_faces)):
        for pid, index in enumerate(chosen[split]):
            char = syllables[index]
            usable = [c for c, face in enumerate(faces) if draws(str(face), char)]
            if split == "train":
                cams = sorted(rng.choice(usable, size=min(o.faces_per_id, len(usable)), replace=False))
                queries: set[int] = set()
            else:
                cams = usable
                queries = set(rng.choice(usable, size=o.queries_per_id, replace=False).tolist())
            for n, cam in enumerate(cams):
                name = f"{pid:04d}/{pid:04d}_{n:03d}_{cam + 1:02d}_u{ord(char):04x}.png"
                shot = Shot(split, pid, cam + 1, str(faces[cam]), char, f"{split}/{name}")
                lists["train" if split == "train" else "query" if cam in queries else "gallery"].append(shot)
    return lists


def _draw(args: tuple[Shot, int, int, str]) -> None:
    shot, size, seed, root = args
    rng = np.random.default_rng([seed, _SPLIT[shot.split], shot.pid, shot.camera])
    target = Path(root) / shot.rel
    target.parent.mkdir(parents=True, exist_ok=True)
    render(shot.face, shot.char, size, rng).save(target, optimize=False)


def build(out: Path, options: GlyphOptions, font_dir: Path = FONT_DIR, workers: int = 2) -> dict[str, Any]:
    """Write the benchmark to `out`/msmt17 (swapped into place when complete); returns glyphs.json's content."""
    train_faces, test_faces = installed(TRAIN_FACES, font_dir), installed(TEST_FACES, font_dir)
    lists = plan(options, train_faces, test_faces)
    target = out / "msmt17"
    with folder_swap(target) as tmp:
        shots = [shot for part in lists.values() for shot in part]
        jobs = [(shot, options.size, options.seed, str(tmp)) for shot in shots]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_draw, jobs, chunksize=256))
        else:
            for job in jobs:
                _draw(job)
        for name, part in (*lists.items(), ("val", [])):
            text = "".join(f"{shot.rel.split('/', 1)[1]} {shot.pid}\n" for shot in part)
            (tmp / f"list_{name}.txt").write_text(text)
        meta = describe(tmp, options, lists, train_faces, test_faces, font_dir)
        (tmp / "glyphs.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return meta


def describe(root: Path, options: GlyphOptions, lists: dict[str, list[Shot]], train_faces: list[Path],
             test_faces: list[Path], font_dir: Path) -> dict[str, Any]:  # fmt: skip
    """glyphs.json: the options, cameras, identities, counts and the pixel-cosine floor of the folder `root`."""
    from qaconv.data import create_dataset

    def cams(faces: list[Path]) -> dict[int, str]:
        return {c + 1: str(face.relative_to(font_dir)) for c, face in enumerate(faces)}

    def ids(split: str) -> dict[int, str]:
        return {shot.pid: shot.char for part in lists.values() for shot in part if shot.split == split}

    floor = pixel_cosine_floor(create_dataset("msmt17", str(root)), options.size)
    return {
        "options": asdict(options),
        "counts": {name: len(part) for name, part in lists.items()},
        "pixel_cosine_floor": floor,
        "train_cameras": cams(train_faces),
        "test_cameras": cams(test_faces),
        "train_ids": ids("train"),
        "test_ids": ids("test"),
    }


def read_floor(root: str | Path) -> dict[str, float] | None:
    """The pixel-cosine floor recorded in a built benchmark's glyphs.json (None when it is not one)."""
    meta = Path(root) / "glyphs.json"
    return json.loads(meta.read_text())["pixel_cosine_floor"] if meta.is_file() else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/glyphs", help="data folder; the set goes to OUT/msmt17")
    for name, default in asdict(GlyphOptions()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default, help=f"default {default}")
    parser.add_argument("--font-dir", type=Path, default=FONT_DIR, help=f"TrueType folder (default {FONT_DIR})")
    parser.add_argument("--workers", type=int, default=2, help="drawing processes (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace a benchmark already in OUT/msmt17")
    args = parser.parse_args(argv)
    target = Path(args.out) / "msmt17"
    if target.exists() and not args.overwrite:
        sys.exit(f"{target} exists; pass --overwrite to build it again")
    options = GlyphOptions(**{k: getattr(args, k) for k in asdict(GlyphOptions())})
    meta = build(Path(args.out), options, args.font_dir, args.workers)
    floor = meta["pixel_cosine_floor"]
    print(
        f"{target}: {meta['counts']['train']} training images of {options.train_ids} syllables in "
        f"{len(meta['train_cameras'])} print faces; {meta['counts']['query']} queries and "
        f"{meta['counts']['gallery']} gallery images of {options.test_ids} other syllables in "
        f"{len(meta['test_cameras'])} handwriting faces; pixel-cosine floor Rank-1 {100 * floor['rank1']:.1f}% / "
        f"mAP {100 * floor['mAP']:.1f}%"
    )


if __name__ == "__main__":
    main()
