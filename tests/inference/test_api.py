"""The ReID API: extraction from any image input, scores, match, search, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from qaconv.data.transforms import build_test_transform
from qaconv.errors import QAConvError


def test_extract_accepts_paths_pil_images_and_arrays_alike(reid, query_images):
    path = query_images[0]
    image = Image.open(path)
    by_path = reid.extract(path)
    assert by_path.shape == (1, 16, 4, 2) and by_path.dtype == torch.float32
    torch.testing.assert_close(reid.extract([image]), by_path)
    torch.testing.assert_close(reid.extract(np.asarray(image.convert("RGB"))), by_path)
    # the model's own forward on the test transform's tensor
    expected = reid.model(build_test_transform(64, 32)(image.convert("RGB"))[None])
    torch.testing.assert_close(by_path, expected, atol=1e-5, rtol=1e-5)
    assert torch.allclose(by_path.norm(dim=1), torch.ones(1, 4, 2), atol=1e-5)


def test_images_of_any_mode_and_size_are_converted(reid, query_images):
    rgb = Image.open(query_images[0]).convert("RGB")
    gray = rgb.convert("L")
    rgba = rgb.convert("RGBA")
    big = rgb.resize((97, 301))
    maps = reid.extract([gray, rgba, big, gray.convert("RGB"), rgb])
    assert maps.shape == (5, 16, 4, 2)
    torch.testing.assert_close(maps[0], maps[3])  # L is replicated to three channels
    torch.testing.assert_close(maps[1], maps[4])  # alpha is dropped


def test_score_is_the_matchers_forward_in_both_orders(reid, query_images, gallery_images):
    a, b = query_images[:2], gallery_images[:3]
    scores = reid.score(a, b)
    assert scores.shape == (2, 3)
    with torch.no_grad():
        expected = reid.matcher(reid.extract(a), reid.extract(b))
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(reid.score(b, a), scores.T, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(reid.score(reid.extract(a), b), scores)  # maps instead of images


def test_match_agrees_with_score_and_plots(reid, query_images, gallery_images, tmp_path):
    match = reid.match(query_images[0], gallery_images[1])
    assert match.score == pytest.approx(reid.score(query_images[0], gallery_images[1]).item(), abs=1e-5)
    assert match.probe.size == match.gallery.size == (32, 64)  # as the model saw them
    picture = match.plot(tmp_path / "m.png", max_lines=3)
    assert Image.open(tmp_path / "m.png").size == picture.size


def test_search_ranks_by_score_and_finds_the_image_itself(reid, query_images, gallery_images):
    scores = reid.score(query_images[:3], gallery_images)
    result = reid.search(query_images[:3], gallery_images, topk=4)
    order = torch.from_numpy(np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :4].copy())
    torch.testing.assert_close(result.indices, order)
    torch.testing.assert_close(result.scores, scores.gather(1, order))
    assert result.paths[1] == [str(gallery_images[j]) for j in order[1].tolist()]
    itself = reid.search(gallery_images[5], gallery_images, topk=1)
    assert itself.indices.tolist() == [[5]]  # every location matches itself with similarity 1
    assert reid.search(query_images[0], gallery_images, topk=100).indices.shape == (1, len(gallery_images))


def test_bad_inputs_raise_clear_errors(reid, query_images, tmp_path):
    text = tmp_path / "readme.png"
    text.write_text("hello")
    with pytest.raises(QAConvError, match=f"not an image file .*{text.name}"):
        reid.extract([query_images[0], text])
    with pytest.raises(QAConvError, match="image file not found: .*missing.jpg"):
        reid.score(tmp_path / "missing.jpg", query_images[0])
    with pytest.raises(QAConvError, match="expected an image path, PIL image or uint8 array, got int"):
        reid.extract([3])
    with pytest.raises(QAConvError, match="uint8"):
        reid.extract(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(QAConvError, match="no images given"):
        reid.extract([])
    with pytest.raises(QAConvError, match="not a tensor"):
        reid.extract(torch.zeros(1, 3, 64, 32))
    with pytest.raises(QAConvError, match=r"a: feature maps have C, H, W = \(3, 64, 32\)"):
        reid.score(torch.zeros(1, 3, 64, 32), query_images[0])
    with pytest.raises(QAConvError, match="--topk must be at least 1"):
        reid.search(query_images[0], query_images, topk=0)
