"""Synthetic multi-camera pedestrian data set, written in the exact Market-1501 layout.

`generate(out_dir, ...)` (or `generate(out_dir, config=SynthConfig(...))`) draws identities (body
shape, skin, hair, clothing colours and patterns, bags, hats) and cameras (background, illumination,
colour cast, blur, resolution, noise, framing, typical viewpoint and occluders), then renders every
image with NumPy on a small canvas and writes JPEGs named like Market-1501's:

    <out_dir>/bounding_box_train/0002_c1s1_000151_01.jpg
    <out_dir>/bounding_box_test/0000_c3s1_004502_02.jpg   (distractor, pid 0)
    <out_dir>/bounding_box_test/-1_c5s1_000822_01.jpg     (junk, pid -1)
    <out_dir>/query/0007_c2s1_019327_01.jpg
    <out_dir>/meta.json

A person looks the same in every camera apart from the camera's effects and the pose
(viewpoint, walking phase, framing), so the set is learnable; identities come in
"families" that share everything but one attribute, so hard negatives exist. Two styles
(domains, 'A' and 'B') differ in palettes, backgrounds and cameras: train on one, test on
the other. Every image's pixels depend only on (seed, style, size, identity or extra index,
image index), so a seed gives the same bytes whatever the number of worker processes.

Modules, in the order the data flows: config (SynthConfig), styles (palettes and ranges),
streams (the seeded random streams), identities, cameras, backgrounds, planning (who is seen by
which camera in which frame, file names), drawing (one person), rendering (one image) and
writing (output folder, worker processes, meta.json, `generate`). docs/synthetic.md describes
the drawing and the options.
"""

from qaconv.config.tree import SynthConfig
from qaconv.data.synthetic.planning import FPS, SPLIT_DIRS
from qaconv.data.synthetic.styles import STYLES
from qaconv.data.synthetic.writing import GENERATOR_VERSION, check_dataset_out, generate

__all__ = [
    "FPS",
    "GENERATOR_VERSION",
    "SPLIT_DIRS",
    "STYLES",
    "SynthConfig",
    "check_dataset_out",
    "generate",
]
