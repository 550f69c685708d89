"""Temporal Lifting (TLift, Liao & Shao, ECCV 2020), vectorised.

TLift re-weights a probe x gallery similarity with the times of the probes that were
seen with it. For each probe camera pc and gallery camera gc, and each probe i of pc:

* ``C(i)``: the probes of pc whose time is within ``tau`` of i's (``|t_j - t_i| < tau``,
  i included) -- the people walking with i;
* ``thr(i)``: the K-th largest of all scores ``score[C(i), gallery of gc]``, or their
  minimum when there are at most K of them;
* pivots: every (j, g) with j in C(i), g in gc and ``score[j, g] >= thr(i)``; a gallery
  item hit from several rows counts once per row (the reference's
  ``np.where(...)[1]`` keeps duplicates);
* ``w[i, g'] = mean over pivots g of exp(-(t_g' - t_g)^2 / sigma^2)`` for every g' in gc.

The output is ``(w + alpha) * score``. Same-camera pairs are lifted too; probes or
gallery items whose camera is outside ``range(num_cams)`` keep ``w = 0``.

Vectorisation: probes of a camera are sorted by time, so ``C(i)`` is a contiguous window;
the K-th largest of ``score[C(i)]`` is the K-th largest of the rows' own top-K lists;
and every pivot of any i lies in its row's "top list" (entries >= that row's K-th
largest), so the pivots come from expanding short lists instead of scanning
``|C(i)| x |gc|`` scores per probe. The loops are over camera pairs and memory chunks only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import QAConvError
from .inputs import flat_labels, to_numpy

__all__ = ["tlift"]

_CHUNK_ELEMENTS = 1 << 22


def _cooccurrence_windows(t: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """For times sorted ascending: window indices [n, W] and membership mask (|t_j - t_i| < tau, exact)."""
    n = t.size
    scale = float(np.max(np.abs(t), initial=0.0)) + abs(float(tau))
    margin = 1e-6 * scale + 1e-9  # widen for rounding; the exact test below decides membership
    tf = t.astype(np.float64)
    lo = np.searchsorted(tf, tf - tau - margin, side="left")
    hi = np.searchsorted(tf, tf + tau + margin, side="right")
    width = int((hi - lo).max(initial=1))
    idx = lo[:, None] + np.arange(width)[None, :]
    inside = idx < hi[:, None]
    idx = np.minimum(idx, n - 1)
    member = inside & (np.abs(t[idx] - t[:, None]) < tau)  # the reference's test, in the times' dtype
    return idx, member


def _lift_block(
    S: np.ndarray, idx: np.ndarray, member: np.ndarray, gtime: np.ndarray, K: int, sigma: float
) -> np.ndarray:
    """Weights [n_p, n_g] for one (probe camera, gallery camera) pair; rows of S in window order."""
    n_p, n_g = S.shape
    kp = min(K, n_g)
    top = np.partition(S, n_g - kp, axis=1)[:, n_g - kp :] if kp < n_g else S  # each row's top-kp values
    row_kth = top.min(axis=1)  # a row's kp-th largest (its minimum when kp == n_g)
    row_min = S.min(axis=1)
    width = idx.shape[1]
    csize = member.sum(axis=1)
    use_kth = csize * n_g > K

    # thresholds, in probe chunks: K-th largest of the union of the members' top lists
    thr = np.empty(n_p, dtype=S.dtype)
    step = max(1, _CHUNK_ELEMENTS // max(width * kp, 1))
    for s in range(0, n_p, step):
        e = min(n_p, s + step)
        m = member[s:e]
        t_min = np.where(m, row_min[idx[s:e]], np.inf).min(axis=1)
        thr[s:e] = t_min
        if width * kp >= K and use_kth[s:e].any():
            u = np.where(m[..., None], top[idx[s:e]], -np.inf).reshape(e - s, width * kp)
            kth = np.partition(u, width * kp - K, axis=1)[:, width * kp - K]
            thr[s:e] = np.where(use_kth[s:e], kth, t_min)

    # pivots: every pivot (j, g) of any i has S[j, g] >= row_kth[j] (see the module docstring)
    cj, cg = np.divmod(np.flatnonzero(np.greater_equal(S, row_kth[:, None])), n_g)
    cval = S[cj, cg]
    ccount = np.bincount(cj, minlength=n_p)
    cstart = np.cumsum(ccount) - ccount
    pi, pa = np.nonzero(member)  # (probe i, window slot) pairs: j = idx[i, a] is in C(i)
    pj = idx[pi, pa]
    counts = np.zeros(n_p * n_g, dtype=np.float64)
    per_pair = ccount[pj]
    bounds = np.cumsum(per_pair)
    s = 0
    while s < pi.size:  # chunks of (i, j) pairs, each expanded over j's list
        base = bounds[s - 1] if s else 0
        e = int(np.searchsorted(bounds, base + _CHUNK_ELEMENTS, side="right"))
        e = min(max(e, s + 1), pi.size)
        n = per_pair[s:e]
        rep = np.repeat(np.arange(s, e), n)
        off = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n) + cstart[pj[s:e]][rep - s]
        hit = cval[off] >= thr[pi[rep]]
        counts += np.bincount(pi[rep[hit]] * n_g + cg[off[hit]], minlength=n_p * n_g)
        s = e
    counts = counts.reshape(n_p, n_g)

    # w = counts @ kernel / number of pivots; counts is sparse (about K |C(i)| pivots per probe)
    # and the kernel is built only for gallery items that are a pivot somewhere
    piv = np.flatnonzero(counts.any(axis=0))
    c = sp.csr_matrix(counts[:, piv])
    total = np.asarray(c.sum(axis=1))
    tg = gtime.astype(np.float64)
    w = np.empty((n_p, n_g), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(piv.size, 1))
    for s in range(0, n_g, step):
        e = min(n_g, s + step)
        kern = np.exp(-((tg[None, s:e] - tg[piv][:, None]) ** 2) / float(sigma) ** 2)  # [pivots, chunk]
        w[:, s:e] = (c @ kern) / total
    return w


def tlift(
    score: Any,
    gal_cam: Any,
    gal_time: Any,
    prob_cam: Any,
    prob_time: Any,
    num_cams: int,
    tau: float = 100,
    sigma: float = 200,
    K: int = 10,
    alpha: float = 0.2,
) -> np.ndarray:
    """Temporal lifting of a [probes, gallery] similarity ``score`` (higher = more similar).

    ``gal_cam``/``prob_cam`` are camera indices in ``range(num_cams)``, ``gal_time``/
    ``prob_time`` times in seconds. Returns ``(w + alpha) * score`` in the score's dtype,
    where ``w`` is the temporal co-occurrence weight described in the module docstring.
    ``alpha=0.2`` suits scores in [0, 1] such as ``1 - reranked_distance`` or a sigmoid.
    """
    S = to_numpy(score)
    if S.ndim != 2:
        raise QAConvError(f"score must be 2-D [probes, gallery], got shape {S.shape}")
    if not np.issubdtype(S.dtype, np.floating):
        S = S.astype(np.float64)
    n_p, n_g = S.shape
    pcam, ptime, gcam, gtime = flat_labels(
        "score", S.shape, {"prob_cam": prob_cam, "prob_time": prob_time}, {"gal_cam": gal_cam, "gal_time": gal_time}
    )
    if int(K) < 1:
        raise QAConvError(f"K must be >= 1, got {K}")
    if not float(sigma) > 0:
        raise QAConvError(f"sigma must be > 0, got {sigma}")
    if not np.isfinite(S).all():
        raise QAConvError("score has non-finite entries (NaN or inf)")
    if not (np.isfinite(gtime).all() and np.isfinite(ptime).all()):
        raise QAConvError("gal_time/prob_time have non-finite entries")
    K = int(K)
    out = S * alpha  # w = 0 where a camera is outside range(num_cams)
    gal_by_cam = [np.flatnonzero(gcam == c) for c in range(int(num_cams))]
    for pc in range(int(num_cams)):
        p_idx = np.flatnonzero(pcam == pc)
        if p_idx.size == 0:
            continue
        order = np.argsort(ptime[p_idx], kind="stable")
        p_idx = p_idx[order]
        idx, member = _cooccurrence_windows(ptime[p_idx], tau)
        for g_idx in gal_by_cam:
            if g_idx.size == 0:
                continue
            block = np.ix_(p_idx, g_idx)
            s_blk = S[block]
            w = _lift_block(s_blk, idx, member, gtime[g_idx], K, sigma)
            out[block] = (w.astype(S.dtype) + alpha) * s_blk
    return out
