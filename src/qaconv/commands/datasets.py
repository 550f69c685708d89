"""`qaconv datasets`: which supported data sets are under a data dir, where, and their sizes."""

from __future__ import annotations

import argparse
import os

from qaconv.errors import QAConvError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list the supported data sets found under a data dir, with ids/images per split",
        description="For every supported data set: whether it is under DIR (and where), ids/images per "
        "split and the number of cameras. Layouts: docs/datasets.md.",
    )
    parser.add_argument("--data-dir", metavar="DIR", default="data", help="folder of the data sets (default: data)")
    parser.set_defaults(func=run)


def _cell(ids: int, images: int) -> str:
    return f"{ids}/{images}"


def _incomplete(name: str, data_dir: str) -> tuple[str, str] | None:
    """(folder, message) for a folder of data set `name` under data_dir that holds part of its layout, naming
    what it lacks; None if there is none (a folder with none of the layout may belong to another data set)."""
    from qaconv.data.datasets import closest_layout, get_dataset_spec

    spec = get_dataset_spec(name)
    for folder in spec.folders:
        path = os.path.join(data_dir, folder)
        if os.path.isdir(path):
            best, missing = closest_layout(spec, path)
            if len(missing) < len(spec.required):
                return path, f"{os.path.relpath(best, data_dir)}/ lacks {', '.join(missing)}; expected {spec.layout}"
    return None


def collect(data_dir: str) -> list[dict]:
    """One row per supported data set: name, status (found / missing / incomplete / error), location, stats,
    message."""
    from qaconv.data.datasets import create_dataset, dataset_names, find_dataset_root, get_dataset_spec

    rows = []
    for name in dataset_names(discoverable_only=True):
        row = {"name": name, "status": "missing", "location": None, "dataset": None, "message": ""}
        location = find_dataset_root(name, data_dir)
        incomplete = _incomplete(name, data_dir) if location is None else None
        if incomplete is not None:
            row["status"], (row["location"], row["message"]) = "incomplete", incomplete
        elif location is None:
            row["message"] = "looked for " + ", ".join(f"{f}/" for f in get_dataset_spec(name).folders)
        else:
            row["location"] = location
            try:
                row["dataset"] = create_dataset(name, location)
                row["status"] = "found"
            except QAConvError as exc:
                row["status"], row["message"] = "error", str(exc)
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise QAConvError(f"data dir is not a folder: {data_dir} (see docs/datasets.md for the layouts)")
    if not os.path.isdir(data_dir):
        raise QAConvError(f"data dir not found: {data_dir} (see docs/datasets.md for the layouts)")
    rows = collect(data_dir)
    header = ("dataset", "status", "train ids/imgs", "query ids/imgs", "gallery ids/imgs", "cams", "time", "location")
    table = []
    for row in rows:
        ds = row["dataset"]
        if ds is None:
            cells = ["-"] * 5
        else:
            st = ds.stats()
            cells = [_cell(st[s].ids, st[s].images) for s in ("train", "query", "gallery")]
            cells += [str(ds.num_cams), "yes" if ds.has_time else "no"]
        location = os.path.relpath(row["location"], data_dir) if row["location"] else "-"
        table.append((row["name"], row["status"], *cells, location))
    widths = [max(len(str(r[i])) for r in (header, *table)) for i in range(len(header))]
    right = {2, 3, 4, 5}
    print(f"data dir: {data_dir}")
    for r in (header, *table):
        print(
            "  ".join(
                str(c).rjust(w) if i in right else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    notes = [(r["name"], r["message"]) for r in rows if r["message"]]
    if notes:
        print()
        for name, message in notes:
            print(f"{name}: {message}")
    print("\nOwn data: create_dataset('folder', DIR) or create_dataset('csv', DIR); see docs/datasets.md.")
    return 0
