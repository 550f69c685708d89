"""The eval-mode QAConv score chain, written once: similarity -> best match both ways -> fc weights -> affine.

With running statistics both batch norms of `QAConv` are affine maps, so the logit of a probe/gallery
pair is

    score = scale * (weight . best_in_gal + weight . best_in_prob) + offset

where best_in_gal[s] = max_r sim[s, r] is the best similarity of probe location s over the gallery
locations r, best_in_prob[r] = max_s sim[s, r] the other direction, and `weight` the shared
Linear(hw, 1) weight. `EvalScorer` (from `QAConv.eval_affine()`) holds that map; block scoring
(`tile`), pair scoring (`aligned`), the exported matcher (`forward`) and the correspondence picture
(`similarities`, `combine`, `contributions`) all call it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def locations_by_row(maps: Tensor) -> Tensor:
    """[N, C, H, W] -> [N*H*W, C]: one row per location, so all location pairs are one matrix product."""
    n, c = maps.shape[:2]
    return maps.reshape(n, c, -1).transpose(1, 2).reshape(-1, c)


def bn_affine(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """(a, b) such that the eval-mode BatchNorm1d(1) computes a * x + b."""
    inv_std = torch.rsqrt(bn.running_var.detach().float() + bn.eps)
    weight = bn.weight.detach().float() if bn.affine else torch.ones_like(inv_std)
    bias = bn.bias.detach().float() if bn.affine else torch.zeros_like(inv_std)
    a = weight * inv_std
    return a.view(()), (bias - a * bn.running_mean.detach().float()).view(())


class EvalScorer(nn.Module):
    """The eval-mode QAConv as an affine map of the best matches; forward(prob, gal) -> scores [P, G].

    Buffers (float32): `weight` [hw]; the location batch norm `bn_scale`, `bn_shift`; `fc_bias`; the
    logit batch norm `logit_scale`, `logit_offset`; and the folded `scale`, `offset` of the formula
    above. Scriptable and ONNX-exportable (forward only).
    """

    def __init__(
        self,
        weight: Tensor,
        bn_scale: Tensor,
        bn_shift: Tensor,
        fc_bias: Tensor,
        logit_scale: Tensor,
        logit_offset: Tensor,
    ) -> None:
        super().__init__()
        weight = weight.detach().float().reshape(-1).clone()
        self.locations = weight.numel()
        self.register_buffer("weight", weight)
        for name, value in (
            ("bn_scale", bn_scale),
            ("bn_shift", bn_shift),
            ("fc_bias", fc_bias),
            ("logit_scale", logit_scale),
            ("logit_offset", logit_offset),
        ):
            self.register_buffer(name, value.detach().float().reshape(()).clone())
        self.register_buffer("scale", self.logit_scale * self.bn_scale)
        self.register_buffer(
            "offset", self.logit_scale * 2 * (self.bn_shift * weight.sum() + self.fc_bias) + self.logit_offset
        )

    def extra_repr(self) -> str:
        return f"locations={self.locations}"

    def forward(self, prob: Tensor, gal: Tensor) -> Tensor:
        """Scores [P, G] of all pairs at once, in float32 (the exported matcher; memory P*G*hw^2 floats)."""
        return self.tile(locations_by_row(prob.float()), locations_by_row(gal.float()))

    def tile(self, prob_rows: Tensor, gal_rows: Tensor) -> Tensor:
        """Scores [p, g] of all pairs of p probe and g gallery maps given as location rows ([p*hw, C], [g*hw, C])."""
        return self.from_similarities(self.similarities(prob_rows, gal_rows))

    def aligned(self, prob: Tensor, gal: Tensor) -> Tensor:
        """Scores [n] of the pairs (prob[i], gal[i]) of maps [n, C, h, w] (a diagonal, not all pairs)."""
        sim = torch.bmm(prob.flatten(2).transpose(1, 2), gal.flatten(2))  # [n, hw_prob, hw_gal]
        return self.from_similarities(sim.unsqueeze(2)).reshape(-1)

    def similarities(self, prob_rows: Tensor, gal_rows: Tensor) -> Tensor:
        """Cosine similarities [p, hw, g, hw] of every probe location with every gallery location."""
        hw = self.locations
        return torch.mm(prob_rows, gal_rows.t()).view(-1, hw, gal_rows.shape[0] // hw, hw)

    def from_similarities(self, sim: Tensor) -> Tensor:
        """[p, hw, g, hw] similarities -> scores [p, g]."""
        return self.combine(sim.amax(dim=3), sim.amax(dim=1))

    def combine(self, best_in_gal: Tensor, best_in_prob: Tensor) -> Tensor:
        """Scores [p, g] from the best matches: best_in_gal [p, hw, g] (each probe location's best similarity
        in each gallery map) and best_in_prob [p, g, hw] (each gallery location's best in each probe map)."""
        pooled = torch.matmul(self.weight, best_in_gal.float()) + torch.matmul(best_in_prob.float(), self.weight)
        return pooled * self.scale + self.offset

    def contributions(self, best: Tensor) -> Tensor:
        """What each location adds to the score before the logit map: BN(best) * weight, over the last dim (hw).

        score = logit_scale * (sum of both directions' contributions + 2 * fc_bias) + logit_offset.
        """
        return (self.bn_scale * best + self.bn_shift) * self.weight
