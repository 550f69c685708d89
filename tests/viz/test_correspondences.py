"""The picture of a match: two images side by side and a coloured line per local correspondence."""

import matplotlib
import numpy as np
from PIL import Image

from qaconv.viz.correspondences import FIGSIZE, draw_correspondences

GRID = (4, 2)  # h x w feature-map locations
PROBE = Image.new("RGB", (32, 64), (128, 128, 128))
GALLERY = Image.new("RGB", (40, 80), (128, 128, 128))  # another size: resized to the probe's
# the images' axes in pixels (rows, columns): the title is above them, the colour bar to their right
AXES = (slice(int(0.10 * FIGSIZE[1] * 100), int(0.94 * FIGSIZE[1] * 100)), slice(0, int(0.74 * FIGSIZE[0] * 100)))
PLASMA = matplotlib.colormaps["plasma"]


def draw(lines, value_range=(0.0, 1.0)):
    picture = draw_correspondences(PROBE, GALLERY, lines, grid=GRID, value_range=value_range, caption="score 1.0")
    assert picture.mode == "RGB" and picture.size == (600, 700)
    return np.asarray(picture).astype(int)


def changed(lines):
    """(rows, columns) of the pixels of the images' axes that the lines changed."""
    diff = np.zeros((700, 600), dtype=bool)
    diff[AXES] = np.abs(draw(lines) - draw([]))[AXES].sum(axis=2) > 60
    return np.nonzero(diff)


def near(image, value):
    """How many pixels of the images' axes have the colour of `value` on the colour map."""
    colour = np.array(PLASMA(value)[:3]) * 255
    return (np.abs(image[AXES] - colour).max(axis=2) < 30).sum()


def test_a_line_takes_the_colour_of_its_contribution():
    strong, weak = draw([(0, 0, 1.0)]), draw([(0, 0, 0.0)])
    assert near(strong, 1.0) > 20 and near(strong, 0.0) == 0
    assert near(weak, 0.0) > 20 and near(weak, 1.0) == 0


def test_the_value_range_spans_the_colour_scale():
    assert near(draw([(0, 0, 0.5)], value_range=(0.5, 1.0)), 0.0) > 20
    assert near(draw([(0, 0, 0.5)], value_range=(0.0, 1.0)), 0.0) == 0


def test_lines_join_the_centres_of_their_cells():
    top_rows, top_columns = changed([(0, 0, 0.5)])  # top-left cell to top-left cell
    bottom_rows, _ = changed([(7, 7, 0.5)])  # bottom-right to bottom-right
    assert len(top_rows) > 50 and len(bottom_rows) > 50
    assert top_rows.max() < bottom_rows.min()  # horizontal segments, one near the top, one near the bottom
    assert top_columns.max() - top_columns.min() > 100  # across the gap from the query to the gallery
