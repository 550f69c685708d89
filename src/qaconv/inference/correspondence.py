"""Local correspondences that explain a QAConv score, and a picture of them (docs/inference.md, "Match two
images and see why they match").

The eval-mode score of a probe/gallery pair is a sum over locations. For probe location s the
best gallery location is r*(s) = argmax_r sim[s, r], and its contribution is

    prob_contrib[s] = BN(max_r sim[s, r]) * fc.weight[s]        (BN with running statistics)

and likewise gal_contrib[r] for every gallery location and its best probe location. Then

    score = logit_scale * (sum(prob_contrib) + sum(gal_contrib) + 2 * fc.bias) + logit_offset

where (logit_scale, logit_offset) is the eval-mode logit batch norm as an affine map. This is
the published `QAConvMatch`'s decomposition, for the QAConv 2.1 matcher (one weight shared by
both directions), computed by the same score chain as all other scores (`EvalScorer`). The picture
(`qaconv.viz.correspondences`) draws a line from a probe location's centre to the centre of its
best gallery location, for the strongest contributions, as the authors' `demo.m` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from qaconv.errors import QAConvError
from qaconv.matching import QAConv, locations_by_row
from qaconv.viz.correspondences import draw_correspondences

DEFAULT_MAX_LINES = 30


@dataclass(frozen=True)
class Correspondences:
    """Per-location contributions and best matches of probe x gallery pairs (CPU tensors).

    Leading dims [P, G] index the pair; h, w are the feature-map rows and columns.
    - score [P, G]: the eval-mode QAConv logit.
    - prob_contrib, prob_similarity, index_in_gal [P, G, h, w]: for each probe location, its
      contribution, its best cosine similarity and the flat index (row * w + col) of the best
      gallery location.
    - gal_contrib, gal_similarity, index_in_prob [P, G, h, w]: the same for each gallery location.
    - fc_bias, logit_scale, logit_offset: the terms that turn the contributions into the score.
    """

    score: Tensor
    prob_contrib: Tensor
    prob_similarity: Tensor
    index_in_gal: Tensor
    gal_contrib: Tensor
    gal_similarity: Tensor
    index_in_prob: Tensor
    fc_bias: float
    logit_scale: float
    logit_offset: float

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the feature maps."""
        return tuple(self.prob_contrib.shape[-2:])

    def pair(self, i: int, j: int) -> Correspondences:
        """The correspondences of probe i and gallery j alone (leading dims [1, 1])."""
        fields = (
            "score",
            "prob_contrib",
            "prob_similarity",
            "index_in_gal",
            "gal_contrib",
            "gal_similarity",
            "index_in_prob",
        )
        parts = {name: getattr(self, name)[i : i + 1, j : j + 1] for name in fields}
        return Correspondences(
            **parts, fc_bias=self.fc_bias, logit_scale=self.logit_scale, logit_offset=self.logit_offset
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of a single pair: every location's best match and contribution."""
        _check_single(self)
        h, w = self.grid

        def rows(contrib: Tensor, similarity: Tensor, index: Tensor) -> list[dict[str, Any]]:
            out = []
            for s, (c, sim, r) in enumerate(
                zip(contrib.flatten().tolist(), similarity.flatten().tolist(), index.flatten().tolist(), strict=True)
            ):
                out.append(
                    {"location": [s // w, s % w], "best_match": [r // w, r % w], "similarity": sim, "contribution": c}
                )
            return out

        return {
            "score": float(self.score.item()),
            "grid": [h, w],
            "formula": "score = logit_scale * (sum(probe contributions) + sum(gallery contributions) + 2 * fc_bias)"
            " + logit_offset",
            "fc_bias": self.fc_bias,
            "logit_scale": self.logit_scale,
            "logit_offset": self.logit_offset,
            "probe_to_gallery": rows(self.prob_contrib, self.prob_similarity, self.index_in_gal),
            "gallery_to_probe": rows(self.gal_contrib, self.gal_similarity, self.index_in_prob),
        }


def _check_single(corr: Correspondences) -> None:
    if corr.score.numel() != 1:
        raise QAConvError(
            f"expected the correspondences of one pair, got {list(corr.score.shape)} pairs; use .pair(i, j)"
        )


@torch.no_grad()
def local_correspondences(matcher: QAConv, prob: Tensor, gal: Tensor) -> Correspondences:
    """Contributions and argmax locations of all prob x gallery pairs, in float32 on the CPU.

    Uses the eval-mode matcher (running batch-norm statistics) whatever its mode. Memory is
    P * G * (hw)^2 floats, so call it on a few pairs (the explanation of a match), not a gallery.
    """
    matcher.check_maps(prob, "prob")
    matcher.check_maps(gal, "gal")
    num_prob, num_gal = len(prob), len(gal)
    device = next(matcher.parameters()).device
    scorer = matcher.eval_affine().to(device)
    rows_p = locations_by_row(prob.detach().to(device, torch.float32))
    rows_g = locations_by_row(gal.detach().to(device, torch.float32))
    sim = scorer.similarities(rows_p, rows_g)  # [P, hw_prob, G, hw_gal]
    best_in_gal, index_in_gal = sim.max(dim=3)  # [P, hw_prob, G]
    best_in_prob, index_in_prob = sim.max(dim=1)  # [P, G, hw_gal]
    score = scorer.combine(best_in_gal, best_in_prob)
    best_in_gal, index_in_gal = best_in_gal.permute(0, 2, 1), index_in_gal.permute(0, 2, 1)

    def grid(t: Tensor) -> Tensor:
        return t.reshape(num_prob, num_gal, matcher.height, matcher.width).cpu()

    return Correspondences(
        score=score.cpu(),
        prob_contrib=grid(scorer.contributions(best_in_gal)),
        prob_similarity=grid(best_in_gal),
        index_in_gal=grid(index_in_gal),
        gal_contrib=grid(scorer.contributions(best_in_prob)),
        gal_similarity=grid(best_in_prob),
        index_in_prob=grid(index_in_prob),
        fc_bias=float(scorer.fc_bias),
        logit_scale=float(scorer.logit_scale),
        logit_offset=float(scorer.logit_offset),
    )


def strongest_lines(
    corr: Correspondences, threshold: float | None = None, max_lines: int = DEFAULT_MAX_LINES
) -> list[tuple[int, int, float]]:
    """(probe location, best gallery location, contribution) of the strongest probe contributions.

    Keeps contributions >= threshold (all when None), then at most max_lines, strongest first.
    """
    _check_single(corr)
    if max_lines < 0:
        raise QAConvError(f"--max-lines must be >= 0, got {max_lines}")
    if threshold is not None and not math.isfinite(threshold):
        raise QAConvError(f"--threshold must be a finite number, got {threshold}")
    contrib = corr.prob_contrib.flatten()
    index = corr.index_in_gal.flatten()
    order = torch.argsort(contrib, descending=True, stable=True).tolist()
    lines = [(s, int(index[s]), float(contrib[s])) for s in order if threshold is None or contrib[s] >= threshold]
    return lines[:max_lines]


def plot_correspondences(
    probe: Image.Image,
    gallery: Image.Image,
    corr: Correspondences,
    *,
    threshold: float | None = None,
    max_lines: int = DEFAULT_MAX_LINES,
    title: str | None = None,
    cmap: str = "plasma",
) -> Image.Image:
    """The two images side by side with a line per strong probe -> gallery correspondence (an RGB image).

    `probe` and `gallery` are the images as the model saw them (resized to its input size). The lines
    are `strongest_lines(corr, threshold, max_lines)`, coloured by contribution (see
    `qaconv.viz.correspondences.draw_correspondences`).
    """
    lines = strongest_lines(corr, threshold, max_lines)
    contribs = corr.prob_contrib.flatten()
    return draw_correspondences(
        probe,
        gallery,
        lines,
        grid=corr.grid,
        value_range=(float(contribs.min()), float(contribs.max())),
        caption=title or f"QAConv score {float(corr.score.item()):.3f}",
        cmap=cmap,
    )
