"""Training curves as a PNG: loss and accuracy per epoch, the triplet margin and the decays marked."""

import numpy as np
from PIL import Image

from qaconv.viz.curves import plot_training_curves

HISTORY = [
    {"epoch": 1, "loss": 18.0, "acc": 0.1, "decayed": False},
    {"epoch": 2, "loss": 12.0, "acc": 0.4, "decayed": True},
    {"epoch": 3, "loss": 9.0, "acc": 0.6},
]
RED, GREY, BLUE, GREEN = (214, 39, 40), (128, 128, 128), (31, 119, 180), (44, 160, 44)  # tab:red, ...


def pixels(path, colour):
    """(rows, columns) of the pixels of `colour` (within anti-aliasing) in the 900 x 320 picture."""
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    assert rgb.shape == (320, 900, 3)
    return np.nonzero(np.abs(rgb - colour).max(axis=2) < 40)


def test_loss_on_the_left_and_accuracy_on_the_right(tmp_path):
    path = plot_training_curves(HISTORY, str(tmp_path / "curves.png"))
    assert path == tmp_path / "curves.png"
    _, loss_x = pixels(path, BLUE)
    _, acc_x = pixels(path, GREEN)
    assert len(loss_x) > 100 and loss_x.max() < 450
    assert len(acc_x) > 100 and acc_x.min() >= 450


def test_the_margin_is_a_red_horizontal_line_in_the_loss_panel_only_when_given(tmp_path):
    with_margin = plot_training_curves(HISTORY, tmp_path / "margin.png", margin=16.0)
    rows, columns = pixels(with_margin, RED)
    assert len(rows) and columns.max() < 450
    assert np.bincount(rows).max() > 50  # one row across the panel (and a short stroke in the legend)
    assert not len(pixels(plot_training_curves(HISTORY, tmp_path / "plain.png"), RED)[0])


def test_a_decay_is_a_grey_vertical_line_in_both_panels(tmp_path):
    _, columns = pixels(plot_training_curves(HISTORY, tmp_path / "decayed.png"), GREY)
    tall = np.flatnonzero(np.bincount(columns, minlength=900) > 100)
    assert (tall < 450).any() and (tall >= 450).any()
    steady = [dict(h, decayed=False) for h in HISTORY]
    _, columns = pixels(plot_training_curves(steady, tmp_path / "steady.png"), GREY)
    assert np.bincount(columns).max() < 50
