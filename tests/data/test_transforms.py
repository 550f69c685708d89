"""The paper's training transforms: shapes, ranges, the white occlusion square, seeded determinism, any PIL mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from qaconv.data.transforms import (
    ColorJitter,
    Compose,
    Pad,
    RandomCrop,
    RandomHorizontalFlip,
    RandomOcclusion,
    RandomRotation,
    Resize,
    ToTensor,
    build_test_transform,
    build_train_transform,
    to_rgb,
)
from qaconv.errors import QAConvError


def noise_image(h: int = 50, w: int = 30, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_train_transform_shape_range_and_order():
    t = build_train_transform(96, 32, seed=0)
    assert [type(s).__name__ for s in t.transforms] == [
        "ToRGB",
        "Resize",
        "Pad",
        "RandomCrop",
        "RandomHorizontalFlip",
        "RandomRotation",
        "ColorJitter",
        "RandomOcclusion",
        "ToTensor",
    ]
    for i in range(5):
        x = t(noise_image(seed=i))
        assert x.shape == (3, 96, 32) and x.dtype == torch.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert build_train_transform().transforms[1].height == 384  # default size 384 x 128
    assert build_train_transform().transforms[1].width == 128


def test_test_transform_is_bicubic_resize_without_normalisation():
    img = noise_image(70, 20)
    x = build_test_transform(64, 32)(img)
    expected = np.asarray(img.resize((32, 64), Image.BICUBIC), np.float32) / 255
    assert x.shape == (3, 64, 32)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-7)
    white = build_test_transform(16, 8)(Image.new("RGB", (5, 9), (255, 255, 255)))
    assert torch.all(white == 1.0)  # no mean/std normalisation


@pytest.mark.parametrize("size", [(384, 128), (64, 32), (40, 40)])
def test_occlusion_is_one_white_square_of_allowed_size(size):
    h, w = size
    occ = RandomOcclusion(0.0, 0.8)
    low, high = occ.side_range(h, w)
    assert (low, high) == (1, int(min(h, w) * 0.8))
    if size == (384, 128):
        assert (low, high - 1) == (1, 101)  # s in [1, 101]
    black = Image.new("RGB", (w, h))
    for seed in range(30):
        out = np.asarray(occ(black, np.random.default_rng(seed)))
        replay = np.random.default_rng(seed)
        s = int(replay.integers(low, high))
        x0, y0 = int(replay.integers(w - s)), int(replay.integers(h - s))
        changed = out.any(axis=2)
        ys, xs = np.nonzero(changed)
        assert (ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (y0, x0, s, s)
        assert changed.sum() == s * s
        assert np.all(out[changed] == 255)
    assert np.asarray(black).max() == 0  # the input is not modified


def test_occlusion_options():
    img = noise_image()
    assert RandomOcclusion(0, 0)(img, np.random.default_rng(0)) is img  # max_size 0 disables it
    sizes = set()
    occ = RandomOcclusion(0.5, 0.6)
    for seed in range(50):
        out = np.asarray(occ(Image.new("RGB", (100, 200)), np.random.default_rng(seed)))
        sizes.add(int(out.any(axis=2).sum(axis=0).max()))
    assert min(sizes) >= 50 and max(sizes) < 60
    for lo, hi in ((0.5, 0.4), (-0.1, 0.5), (0.0, 1.5)):
        with pytest.raises(QAConvError):
            RandomOcclusion(lo, hi)


def test_crop_and_flip_replay_from_the_generator():
    img = noise_image(40, 20)
    padded = Pad(10)(img)
    assert padded.size == (40, 60) and np.asarray(padded)[:10].max() == 0
    for seed in range(10):
        out = RandomCrop(40, 20)(padded, np.random.default_rng(seed))
        replay = np.random.default_rng(seed)
        top, left = int(replay.integers(0, 21)), int(replay.integers(0, 21))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(padded)[top : top + 40, left : left + 20])
    flipped = RandomHorizontalFlip(1.0)(img, np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    assert RandomHorizontalFlip(0.0)(img, np.random.default_rng(0)) is img
    flips = [RandomHorizontalFlip(0.5)(img, np.random.default_rng(s)) is not img for s in range(200)]
    assert 70 < sum(flips) < 130


def test_rotation_keeps_size_and_fills_black():
    white = Image.new("RGB", (40, 120), (255, 255, 255))
    for seed in range(10):
        angle = np.random.default_rng(seed).uniform(-5, 5)
        out = np.asarray(RandomRotation(5)(white, np.random.default_rng(seed)))
        assert out.shape == (120, 40, 3)
        assert set(np.unique(out)) <= {0, 255}  # nearest, black fill: no blending
        if abs(angle) > 2:  # the corners rotate out of view and come back black
            assert out[0, 0].max() == out[-1, -1].max() == out[0, -1].max() == out[-1, 0].max() == 0
        assert out[60, 20].min() == 255
    np.testing.assert_array_equal(np.asarray(RandomRotation(0)(white, np.random.default_rng(0))), np.asarray(white))


def test_color_jitter():
    img = noise_image()
    same = ColorJitter((1, 1), (1, 1), (1, 1), (0, 0))(img, np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(same), np.asarray(img))
    dark = ColorJitter((0.5, 0.5), (1, 1), (1, 1), (0, 0))(img, np.random.default_rng(0))
    assert np.asarray(dark).mean() == pytest.approx(np.asarray(img).mean() / 2, abs=1.0)
    grey = ColorJitter((1, 1), (1, 1), (0, 0), (0, 0))(img, np.random.default_rng(0))
    a = np.asarray(grey).astype(int)
    assert np.abs(a[..., 0] - a[..., 1]).max() <= 1  # saturation 0: grey
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    shifted = ColorJitter((1, 1), (1, 1), (1, 1), (1 / 3, 1 / 3))(red, np.random.default_rng(0))
    r, g, b = np.asarray(shifted)[0, 0]
    assert g > 200 and r < 60 and b < 60  # a hue shift of a third turns red into green
    orders = {tuple(np.random.default_rng(s).permutation(4)) for s in range(50)}
    assert len(orders) > 10  # the adjustment order is drawn per image
    with pytest.raises(QAConvError):
        ColorJitter(hue=(-0.7, 0.1))


def test_seeded_transforms_repeat_and_differ():
    images = [noise_image(seed=i) for i in range(4)]
    a, b, c = (build_train_transform(48, 16, seed=s) for s in (7, 7, 8))
    xa, xb, xc = ([t(img) for img in images] for t in (a, b, c))
    assert all(torch.equal(p, q) for p, q in zip(xa, xb, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(xa, xc, strict=True))
    a.reseed(7)
    assert all(torch.equal(a(img), p) for img, p in zip(images, xa, strict=True))


def test_unseeded_transform_follows_torch_seed():
    img = noise_image()
    torch.manual_seed(3)
    x = build_train_transform(48, 16)(img)
    torch.manual_seed(3)
    y = build_train_transform(48, 16)(img)
    assert torch.equal(x, y)


def test_standalone_random_transforms_own_a_generator():
    img = noise_image(40, 20)
    crops = [np.asarray(RandomCrop(30, 10, seed=1)(img)) for _ in range(2)]
    np.testing.assert_array_equal(*crops)
    t = RandomCrop(30, 10, seed=1)
    t.reseed(1)
    np.testing.assert_array_equal(np.asarray(t(img)), crops[0])
    with pytest.raises(QAConvError, match="smaller"):
        RandomCrop(60, 10)(img)


MODES = [
    "1",
    "L",
    "P",
    "RGB",
    "RGBA",
    "LA",
    "PA",
    "La",
    "RGBa",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "I;16",
    "I;16B",
    "F",
]


@pytest.mark.parametrize("mode", MODES)
def test_any_pil_mode_gives_rgb_tensors(mode):
    img = Image.new(mode, (9, 21))
    assert to_rgb(img).mode == "RGB"
    for t in (build_train_transform(32, 16, seed=0), build_test_transform(32, 16)):
        x = t(img)
        assert x.shape == (3, 32, 16) and x.min() >= 0 and x.max() <= 1


def test_high_bit_depth_images_are_scaled_not_clipped():
    a16 = np.array([[0, 32896, 65535]], np.uint16)
    np.testing.assert_array_equal(np.asarray(to_rgb(Image.fromarray(a16)))[0, :, 0], [0, 128, 255])
    f = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(to_rgb(Image.fromarray(f)))[0, :, 1], [0, 128, 255])
    small = np.array([[0, 100, 255]], np.int32)  # 'I' images already in 0..255 stay as they are
    np.testing.assert_array_equal(np.asarray(to_rgb(Image.fromarray(small)))[0, :, 2], [0, 100, 255])


def test_to_tensor_and_compose():
    img = noise_image(6, 4)
    x = ToTensor()(img)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy() * 255, np.asarray(img), atol=1e-4)
    chain = Compose([Resize(12, 8), ToTensor()], seed=0)
    assert chain(img).shape == (3, 12, 8) and "Resize" in repr(chain)
