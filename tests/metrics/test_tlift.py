"""Temporal lifting: parity with the reference fixture, hand examples, a per-probe loop oracle."""

from pathlib import Path

import numpy as np
import pytest

from qaconv.errors import QAConvError
from qaconv.metrics import tlift

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def _loop_oracle(S, gcam, gtime, pcam, ptime, num_cams, tau=100, sigma=200, K=10, alpha=0.2):
    """One probe at a time, straight from the definition."""
    w = np.zeros(S.shape)
    for pc in range(num_cams):
        probes = np.flatnonzero(pcam == pc)
        for gc in range(num_cams):
            gal = np.flatnonzero(gcam == gc)
            if gal.size == 0:
                continue
            for i in probes:
                C = probes[np.abs(ptime[probes] - ptime[i]) < tau]
                vals = np.sort(S[np.ix_(C, gal)], axis=None)
                thr = vals[-K] if vals.size > K else vals[0]
                pivots = gal[np.nonzero(S[np.ix_(C, gal)] >= thr)[1]]  # duplicates kept
                dt = gtime[gal][:, None] - gtime[pivots][None, :]
                w[i, gal] = np.exp(-(dt**2) / sigma**2).mean(axis=1)
    return (w + alpha) * S


def test_parity_with_reference_fixture():
    ref = np.load(FIXTURES / "tlift.npz")
    out = tlift(
        ref["score"],
        ref["gal_cam"],
        ref["gal_time"],
        ref["prob_cam"],
        ref["prob_time"],
        int(ref["num_cams"]),
        tau=float(ref["tau"]),
        sigma=float(ref["sigma"]),
        K=int(ref["K"]),
        alpha=float(ref["alpha"]),
    )
    assert out.dtype == ref["out"].dtype
    np.testing.assert_allclose(out, ref["out"], rtol=0, atol=1e-5)


def _k(dt, sigma=200.0):
    return np.exp(-(np.asarray(dt, dtype=float) ** 2) / sigma**2)


def test_hand_example():
    # one camera; probes at t=0 and t=50; gallery at t=0, 100, 200
    gtime, ptime = np.array([0.0, 100.0, 200.0]), np.array([0.0, 50.0])
    cams_g, cams_p = np.zeros(3, int), np.zeros(2, int)
    S = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.4]])
    # tau=100: the probes co-occur; K=1 -> threshold 0.9 -> one pivot, gallery 0 (t=0)
    out = tlift(S, cams_g, gtime, cams_p, ptime, 1, K=1, alpha=0.2)
    w = _k([0, 100, 200])
    np.testing.assert_allclose(out, (w[None, :] + 0.2) * S)
    # tau=10: each probe alone -> probe 1's pivot is gallery 1 (t=100)
    out = tlift(S, cams_g, gtime, cams_p, ptime, 1, tau=10, K=1, alpha=0.2)
    np.testing.assert_allclose(out[1], (_k([-100, 0, 100]) + 0.2) * S[1])
    # K=3: top-3 of both rows are 0.95, 0.9 and 0.85 -> pivots g0 (row 1), g0 (row 0), g1 (row 0):
    # the duplicate counts twice
    S3 = np.array([[0.9, 0.85, 0.1], [0.95, 0.2, 0.3]])
    out = tlift(S3, cams_g, gtime, cams_p, ptime, 1, K=3, alpha=0.0)
    w = (2 * _k([0, 100, 200]) + _k([-100, 0, 100])) / 3
    np.testing.assert_allclose(out, w[None, :] * S3)
    # K=10 > 6 co-occurring scores -> threshold is their minimum: every score is a pivot
    out = tlift(S, cams_g, gtime, cams_p, ptime, 1, K=10, alpha=0.0)
    w = (_k([0, 100, 200]) + _k([-100, 0, 100]) + _k([-200, -100, 0])) / 3
    np.testing.assert_allclose(out, w[None, :] * S)


def test_matches_loop_oracle_with_ties():
    rng = np.random.default_rng(0)
    for trial in range(40):
        p, g, nc = int(rng.integers(1, 30)), int(rng.integers(1, 50)), int(rng.integers(1, 4))
        S = (rng.integers(0, 6, (p, g)) / 5).astype(np.float32) if trial % 2 else rng.random((p, g))
        pcam, gcam = rng.integers(0, nc, p), rng.integers(0, nc, g)
        ptime, gtime = rng.integers(0, 300, p).astype(float), rng.integers(0, 300, g).astype(float)
        K, tau = int(rng.integers(1, 12)), float(rng.integers(1, 120))
        out = tlift(S, gcam, gtime, pcam, ptime, nc, tau=tau, K=K)
        np.testing.assert_allclose(
            out,
            _loop_oracle(S, gcam, gtime, pcam, ptime, nc, tau=tau, K=K),
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"trial {trial}",
        )


def test_cameras_outside_range_keep_alpha_only():
    rng = np.random.default_rng(1)
    S = rng.random((4, 5)).astype(np.float32)
    out = tlift(S, np.array([0, 0, 1, 5, 0]), np.arange(5.0), np.array([0, 7, 1, 0]), np.arange(4.0), 2, alpha=0.2)
    np.testing.assert_allclose(out[1], 0.2 * S[1], rtol=1e-6)
    np.testing.assert_allclose(out[:, 3], 0.2 * S[:, 3], rtol=1e-6)


def test_errors():
    S = np.ones((2, 3))
    with pytest.raises(QAConvError, match="gal_time has 2 entries"):
        tlift(S, [0, 0, 0], [1, 2], [0, 0], [1, 2], 1)
    with pytest.raises(QAConvError, match="K must be"):
        tlift(S, [0, 0, 0], [1, 2, 3], [0, 0], [1, 2], 1, K=0)
    with pytest.raises(QAConvError, match="non-finite"):
        tlift(np.array([[1.0, np.nan, 0], [0, 0, 0]]), [0, 0, 0], [1, 2, 3], [0, 0], [1, 2], 1)
