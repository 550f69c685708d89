"""Local correspondences that explain a QAConv score, and a picture of them (SPEC 2.4).

The eval-mode score of a probe/gallery pair is a sum over locations. For probe location s the
best gallery location is r*(s) = argmax_r sim[s, r], and its contribution is

    prob_contrib[s] = BN(max_r sim[s, r]) * fc.weight[s]        (BN with running statistics)

and likewise gal_contrib[r] for every gallery location and its best probe location. Then

    score = logit_scale * (sum(prob_contrib) + sum(gal_contrib) + 2 * fc.bias) + logit_offset

where (logit_scale, logit_offset) is the eval-mode logit batch norm as an affine map. This is
the published `QAConvMatch`'s decomposition, for the QAConv 2.1 matcher (one weight shared by
both directions). The picture draws a line from a probe location's centre to the centre of its
best gallery location, for the strongest contributions, as the authors' `demo.m` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from qaconv.errors import QAConvError
from qaconv.matching.qaconv import QAConv, bn_affine, locations_by_row

DEFAULT_MAX_LINES = 30
FIGSIZE = (6.0, 7.0)  # inches at 100 dpi: a 600 x 700 picture


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
    h, w, hw = matcher.height, matcher.width, matcher.locations
    device = next(matcher.parameters()).device
    rows_p = locations_by_row(prob.detach().to(device, torch.float32))
    rows_g = locations_by_row(gal.detach().to(device, torch.float32))
    sim = torch.mm(rows_p, rows_g.t()).view(num_prob, hw, num_gal, hw)
    best_in_gal, index_in_gal = sim.max(dim=3)  # [P, hw_prob, G]
    best_in_gal, index_in_gal = best_in_gal.permute(0, 2, 1), index_in_gal.permute(0, 2, 1)
    best_in_prob, index_in_prob = sim.max(dim=1)  # [P, G, hw_gal]
    weight = matcher.fc.weight.detach().float().view(hw)
    a_in, b_in = bn_affine(matcher.bn)
    a_out, b_out = bn_affine(matcher.logit_bn)
    bias = matcher.fc.bias.detach().float().view(())
    prob_contrib = (a_in * best_in_gal + b_in) * weight
    gal_contrib = (a_in * best_in_prob + b_in) * weight
    score = a_out * (prob_contrib.sum(-1) + gal_contrib.sum(-1) + 2 * bias) + b_out

    def grid(t: Tensor) -> Tensor:
        return t.reshape(num_prob, num_gal, h, w).cpu()

    return Correspondences(
        score=score.cpu(),
        prob_contrib=grid(prob_contrib),
        prob_similarity=grid(best_in_gal),
        index_in_gal=grid(index_in_gal),
        gal_contrib=grid(gal_contrib),
        gal_similarity=grid(best_in_prob),
        index_in_prob=grid(index_in_prob),
        fc_bias=float(bias),
        logit_scale=float(a_out),
        logit_offset=float(b_out),
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

    `probe` and `gallery` are the images as the model saw them (resized to its input size). Each
    feature-map location is a cell of the image; a line joins the centre of a probe cell to the centre
    of its best-matching gallery cell, coloured by its contribution (colour bar on the right).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    lines = strongest_lines(corr, threshold, max_lines)
    width, height = probe.size
    if gallery.size != probe.size:
        gallery = gallery.resize(probe.size, Image.BICUBIC)
    h, w = corr.grid
    cell_w, cell_h = width / w, height / h
    gap = 0.2 * width

    def centre(loc: int, x0: float) -> tuple[float, float]:
        return x0 + (loc % w + 0.5) * cell_w, (loc // w + 0.5) * cell_h

    fig = Figure(figsize=FIGSIZE, dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.06, 0.72, 0.84))
    ax.imshow(probe, extent=(0, width, height, 0))
    ax.imshow(gallery, extent=(width + gap, 2 * width + gap, height, 0))
    ax.set_xlim(0, 2 * width + gap)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(width / 2, height * 1.02, "query", ha="center", va="top", fontsize=9)
    ax.text(1.5 * width + gap, height * 1.02, "gallery", ha="center", va="top", fontsize=9)
    contribs = corr.prob_contrib.flatten()
    norm = Normalize(vmin=float(contribs.min()), vmax=float(contribs.max()) + 1e-12)
    colormap = matplotlib.colormaps[cmap]
    if lines:
        segments = [(centre(s, 0.0), centre(r, width + gap)) for s, r, _ in lines]
        values = [c for _, _, c in lines]
        collection = LineCollection(segments, cmap=colormap, norm=norm, linewidths=1.6)
        collection.set_array(values)
        ax.add_collection(collection)
        points = [p for seg in segments for p in seg]
        ax.scatter(
            [p[0] for p in points],
            [p[1] for p in points],
            s=8,
            c=[v for v in values for _ in (0, 1)],
            cmap=colormap,
            norm=norm,
            zorder=3,
        )
    colorbar_ax = fig.add_axes((0.77, 0.15, 0.035, 0.68))
    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=colormap), cax=colorbar_ax)
    colorbar.set_label("contribution to the score", fontsize=9)
    score = float(corr.score.item())
    caption = title or f"QAConv score {score:.3f}"
    fig.suptitle(f"{caption}\n{len(lines)} strongest of {h * w} query locations", fontsize=10)
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
