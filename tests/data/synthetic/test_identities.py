"""Identities: family members differ from their base in one attribute group, and a person is recognisable
across cameras (learnable) without the task being solved by colour alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qaconv.data.synthetic import SynthConfig, generate
from qaconv.data.synthetic.identities import family, population
from tests.data.synthetic.conftest import NAME

# The keys each attribute group draws (identities.MUTABLE); the rest is body shape and skin.
GROUPS = {
    "upper_colour": {"upper1", "upper2"},
    "upper_pattern": {"pattern", "period", "logo"},
    "lower": {"lower", "lower_kind", "tights"},
    "bag": {"bag", "bag_colour"},
    "hair": {"hair_style", "hair"},
    "shoes": {"shoes"},
    "sleeves": {"long_sleeves"},
    "hat": {"hat", "hat_colour"},
}


@pytest.mark.parametrize("style", ["A", "B"])
def test_family_members_differ_in_one_attribute_group(style):
    rng = np.random.default_rng(0)
    for _ in range(30):
        base, *twins = family(rng, style, 4)
        for twin in twins:
            changed = {k for k in base if twin[k] != base[k]}
            assert changed and any(changed <= keys for keys in GROUPS.values()), changed


def test_population_is_num_ids_people_in_families():
    identities, families = population(np.random.default_rng(1), "A", 25)
    assert sorted(identities) == list(range(1, 26))
    assert sorted(p for f in families for p in f) == list(range(1, 26))
    assert all(1 <= len(f) <= 4 for f in families)


def _histogram_rank1(root: Path) -> tuple[float, float]:
    """Rank-1 of a colour-histogram matcher (Market protocol, cross-camera) and its chance level."""

    def load(split):
        feats, pids, cams = [], [], []
        for path in sorted((root / split).iterdir()):
            pid, cam = NAME.match(path.name).group(1, 2)
            if pid == "-1":
                continue
            with Image.open(path) as img:
                a = np.asarray(img, np.float32)
            a = np.clip(a / a.reshape(-1, 3).mean(0) * 110, 0, 255)  # grey-world: undo the camera cast
            h, w = a.shape[:2]
            parts = []
            for y0, y1 in ((0.15, 0.5), (0.5, 0.95)):
                q = (a[int(h * y0) : int(h * y1), w // 4 : 3 * w // 4].reshape(-1, 3) // 43).astype(int)
                hist = np.bincount(q[:, 0] * 36 + q[:, 1] * 6 + q[:, 2], minlength=216)
                parts.append(np.sqrt(hist / hist.sum()))
            feats.append(np.concatenate(parts))
            pids.append(int(pid))
            cams.append(int(cam))
        return np.asarray(feats), np.asarray(pids), np.asarray(cams)

    qx, qp, qc = load("query")
    gx, gp, gc = load("bounding_box_test")
    dist = ((qx[:, None] - gx[None]) ** 2).sum(-1)
    hits = []
    for i in range(len(qx)):
        keep = ~((gp == qp[i]) & (gc == qc[i]))
        hits.append(gp[keep][np.argmin(dist[i][keep])] == qp[i])
    return float(np.mean(hits)), 1.0 / len(set(gp.tolist()))


@pytest.mark.parametrize("style", ["A", "B"])
def test_identities_are_consistent_across_cameras(tmp_path, style):
    """Learnable: even colour histograms re-identify people across cameras far above chance (and the
    task is far from solved by them)."""
    generate(tmp_path / "set", SynthConfig(num_ids=80, num_cams=6, seed=3, style=style, height=128, width=64))
    rank1, chance = _histogram_rank1(tmp_path / "set")
    assert 4 * chance < rank1 < 0.9
