"""The picture of a match: query and gallery image side by side, a line per strong local correspondence.

Each feature-map location is a cell of the image; a line joins the centre of a probe cell to the
centre of its best-matching gallery cell, coloured by its contribution to the score (colour bar on
the right), as the authors' `demo.m` draws it. `qaconv.inference.plot_correspondences` chooses the
lines from a match's `Correspondences`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

FIGSIZE = (6.0, 7.0)  # inches at 100 dpi: a 600 x 700 picture
GAP = 0.2  # between the two images, in image widths

Line = tuple[int, int, float]  # (probe location, gallery location, contribution); locations are row * w + col


def draw_correspondences(
    probe: Image.Image,
    gallery: Image.Image,
    lines: Sequence[Line],
    *,
    grid: tuple[int, int],
    value_range: tuple[float, float],
    caption: str,
    cmap: str = "plasma",
) -> Image.Image:
    """The RGB picture of `lines` between `probe` and `gallery` (resized to the probe's size) on an h x w `grid`.

    `value_range` (low, high) spans the colour bar; `caption` is the title's first line.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if gallery.size != probe.size:
        gallery = gallery.resize(probe.size, Image.BICUBIC)
    fig = Figure(figsize=FIGSIZE, dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.06, 0.72, 0.84))
    _draw_images(ax, probe, gallery)
    norm = Normalize(vmin=value_range[0], vmax=value_range[1] + 1e-12)
    colormap = matplotlib.colormaps[cmap]
    if lines:
        _draw_lines(ax, lines, probe.size, grid, norm, colormap)
    _draw_colorbar(fig, norm, colormap)
    h, w = grid
    fig.suptitle(f"{caption}\n{len(lines)} strongest of {h * w} query locations", fontsize=10)
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())


def _draw_images(ax, probe: Image.Image, gallery: Image.Image) -> None:
    """The query at x in [0, width], the gallery after a gap; labelled below, no axes."""
    width, height = probe.size
    gap = GAP * width
    ax.imshow(probe, extent=(0, width, height, 0))
    ax.imshow(gallery, extent=(width + gap, 2 * width + gap, height, 0))
    ax.set_xlim(0, 2 * width + gap)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(width / 2, height * 1.02, "query", ha="center", va="top", fontsize=9)
    ax.text(1.5 * width + gap, height * 1.02, "gallery", ha="center", va="top", fontsize=9)


def _draw_lines(ax, lines: Sequence[Line], size: tuple[int, int], grid: tuple[int, int], norm, colormap) -> None:
    """A coloured segment and two end points per line, from probe cell centre to gallery cell centre."""
    from matplotlib.collections import LineCollection

    width, height = size
    h, w = grid
    cell_w, cell_h = width / w, height / h

    def centre(loc: int, x0: float) -> tuple[float, float]:
        return x0 + (loc % w + 0.5) * cell_w, (loc // w + 0.5) * cell_h

    segments = [(centre(s, 0.0), centre(r, width * (1 + GAP))) for s, r, _ in lines]
    values = [c for _, _, c in lines]
    collection = LineCollection(segments, cmap=colormap, norm=norm, linewidths=1.6)
    collection.set_array(values)
    ax.add_collection(collection)
    points = [p for seg in segments for p in seg]
    colours = [v for v in values for _ in (0, 1)]
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=8, c=colours, cmap=colormap, norm=norm, zorder=3)


def _draw_colorbar(fig, norm, colormap) -> None:
    from matplotlib.cm import ScalarMappable

    colorbar_ax = fig.add_axes((0.77, 0.15, 0.035, 0.68))
    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=colormap), cax=colorbar_ax)
    colorbar.set_label("contribution to the score", fontsize=9)
