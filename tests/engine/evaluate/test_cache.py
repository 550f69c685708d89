"""Feature cache: keys follow each image's size and modification time; the folder is checked up front."""

import os
from types import SimpleNamespace

import pytest
import torch

from qaconv.config import ModelConfig
from qaconv.engine.evaluate import FeatureCache
from qaconv.errors import QAConvError

CONFIG = ModelConfig(arch="resnet18", height=64, width=32)


def test_key_changes_when_an_image_changes_under_its_name(tmp_path):
    images = []
    for i in range(3):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(b"x" * (10 + i))
        images.append(SimpleNamespace(path=str(path)))
    cache = FeatureCache(tmp_path, "weights")
    key = cache.key(images, CONFIG, torch.float32)
    assert cache.key(images, CONFIG, torch.float32) == key
    assert cache.key(images, CONFIG, torch.float16) != key
    assert FeatureCache(tmp_path, "other weights").key(images, CONFIG, torch.float32) != key
    st = os.stat(images[1].path)
    os.utime(images[1].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same size, newer
    newer = cache.key(images, CONFIG, torch.float32)
    assert newer != key
    (tmp_path / "1.jpg").write_bytes(b"y" * 99)
    os.utime(images[1].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same time, other size
    assert cache.key(images, CONFIG, torch.float32) not in (key, newer)


def test_prepare_creates_the_folder_or_names_the_option(tmp_path):
    assert FeatureCache.prepare(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(QAConvError, match=r"--cache-dir .*file is a file, not a folder"):
        FeatureCache.prepare(tmp_path / "file")
    with pytest.raises(QAConvError, match=r"--cache-dir .*file/sub: cannot create the folder"):
        FeatureCache.prepare(tmp_path / "file" / "sub")


def test_a_foreign_or_broken_cache_file_is_a_miss(tmp_path, capsys):
    cache = FeatureCache(tmp_path, "weights")
    path = tmp_path / "set-query-0.pt"
    assert cache.load(path, "k") is None
    cache.save(path, "k", torch.ones(2, 3))
    assert torch.equal(cache.load(path, "k"), torch.ones(2, 3))
    assert cache.load(path, "another key") is None
    path.write_bytes(b"truncated")
    assert cache.load(path, "k") is None
    assert "ignoring unreadable feature cache" in capsys.readouterr().out
