"""The QAConv 2.1 matcher (Liao & Shao): query-adaptive convolution with global max pooling both ways.

Every probe location is a 1x1 kernel convolved over the gallery map, which is the cosine
similarity of all location pairs. Its best match is pooled in each direction, batch-normalised
with one scalar mean/variance, weighted by one shared Linear(hw, 1), and the two directions are
summed and batch-normalised again into a logit. The shared weight makes score(a, b) == score(b, a).
State-dict keys (`bn.*`, `fc.*`, `logit_bn.*`) equal the published code's, so its checkpoints load.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from qaconv.errors import QAConvError
from qaconv.matching.eval_scorer import EvalScorer, bn_affine, locations_by_row


class QAConv(nn.Module):
    """Pairwise matcher of L2-normalised feature maps: forward(prob [P,C,H,W], gal [G,C,H,W]) -> logits [P,G].

    In train mode both batch norms use the statistics of all pairs of the call (as in training with the
    batch-hard triplet loss); in eval mode their running statistics. For large probe x gallery sets use
    `qaconv.matching.pairwise_scores`, which computes the eval-mode scores block by block.
    """

    def __init__(self, num_features: int, height: int, width: int) -> None:
        super().__init__()
        if min(num_features, height, width) <= 0:
            raise QAConvError(
                f"QAConv needs positive num_features, height, width; got {num_features}, {height}, {width}"
            )
        self.num_features = num_features
        self.height = height
        self.width = width
        self.locations = height * width
        self.bn = nn.BatchNorm1d(1)
        self.fc = nn.Linear(self.locations, 1)
        self.logit_bn = nn.BatchNorm1d(1)
        with torch.no_grad():
            self.fc.weight.fill_(1.0 / self.locations)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, height={self.height}, width={self.width}"

    def check_maps(self, maps: Tensor, name: str) -> None:
        """Raise a clear error unless `maps` is [N, C, H, W] with this matcher's C, H and W."""
        if not isinstance(maps, Tensor):
            raise QAConvError(f"{name}: expected a torch.Tensor of feature maps, got {type(maps).__name__}")
        if maps.dim() != 4:
            raise QAConvError(f"{name}: expected feature maps of shape [N, C, H, W], got {list(maps.shape)}")
        expected = (self.num_features, self.height, self.width)
        if tuple(maps.shape[1:]) != expected:
            raise QAConvError(
                f"{name}: feature maps have C, H, W = {tuple(maps.shape[1:])} but the matcher expects {expected}"
            )

    def best_matches(self, prob: Tensor, gal: Tensor) -> tuple[Tensor, Tensor]:
        """Max similarity per location: ([P,G,hw] over gallery locations, [P,G,hw] over probe locations)."""
        hw = self.locations
        sim = torch.mm(locations_by_row(prob), locations_by_row(gal).t())
        sim = sim.view(len(prob), hw, len(gal), hw)
        # max(dim) rather than amax: its backward keeps only the indices, not the [P*hw, G*hw] similarities.
        best_in_gal = sim.max(dim=3).values.permute(0, 2, 1)
        best_in_prob = sim.max(dim=1).values
        return best_in_gal, best_in_prob

    def forward(self, prob: Tensor, gal: Tensor) -> Tensor:
        self.check_maps(prob, "prob")
        self.check_maps(gal, "gal")
        num_prob, num_gal, hw = len(prob), len(gal), self.locations
        x = torch.cat(self.best_matches(prob, gal), dim=-1)  # [P, G, 2hw]
        x = self.bn(x.reshape(-1, 1, hw)).view(-1, hw)
        x = self.fc(x).view(-1, 2).sum(dim=1, keepdim=True)
        return self.logit_bn(x).view(num_prob, num_gal)

    def eval_affine(self) -> EvalScorer:
        """The eval-mode matcher folded into an affine map of the best matches (running statistics, float32).

        score = scale * (weight . best_in_gal + weight . best_in_prob) + offset: see `EvalScorer`, which
        block scoring, pair scoring, export and the correspondence picture share.
        """
        a_in, b_in = bn_affine(self.bn)
        a_out, b_out = bn_affine(self.logit_bn)
        return EvalScorer(self.fc.weight, a_in, b_in, self.fc.bias.detach().float().view(()), a_out, b_out)
