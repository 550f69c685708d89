"""Losses on the QAConv score matrix of a batch against itself.

`TripletLoss` is QAConv 2.1's batch-hard triplet loss on raw logits (margin 16; the matcher's
logit batch norm learns the scale). `PairwiseMatchingLoss` is QAConv 2.0's binary cross-entropy
over all B x B pairs. Both return per-anchor losses and accuracies; the trainer averages the
finite losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qaconv.errors import QAConvError

# The published code's mask value: finite, so an anchor without positives or negatives gets loss 0.
_FAR = 1e15


def _hardest_pairs(score: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(lowest score of another same-label sample, highest score of a different-label sample) per anchor."""
    score = score.float()
    same = labels[:, None] == labels[None, :]
    self_pair = torch.eye(len(labels), dtype=torch.bool, device=score.device)
    min_pos = score.masked_fill(~same | self_pair, _FAR).min(dim=1).values
    max_neg = score.masked_fill(same, -_FAR).max(dim=1).values
    return min_pos, max_neg


def _check_batch(features: Tensor, labels: Tensor) -> None:
    if labels.dim() != 1 or len(labels) != len(features):
        raise QAConvError(
            f"labels must be a 1-D tensor with one label per feature map; got {list(labels.shape)} "
            f"for {len(features)} feature maps"
        )


class TripletLoss(nn.Module):
    """Batch-hard triplet loss on matcher logits: max(0, hardest negative - hardest positive + margin).

    forward(features [B,C,H,W], labels [B]) -> (loss [B], accuracy [B]); accuracy is 1 where the
    hardest positive scores at least as high as the hardest negative.
    """

    def __init__(self, matcher: nn.Module, margin: float = 16.0) -> None:
        super().__init__()
        self.matcher = matcher
        self.margin = margin

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        _check_batch(features, labels)
        min_pos, max_neg = _hardest_pairs(self.matcher(features, features), labels)
        loss = F.relu(max_neg - min_pos + self.margin)
        return loss, (min_pos >= max_neg).float().detach()


class PairwiseMatchingLoss(nn.Module):
    """QAConv 2.0's loss: binary cross-entropy with logits over all B x B pairs, summed per anchor.

    Same-label pairs (the diagonal included) are positives. Returns (loss [B], accuracy [B]) with
    the accuracy of `TripletLoss`.
    """

    def __init__(self, matcher: nn.Module) -> None:
        super().__init__()
        self.matcher = matcher

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        _check_batch(features, labels)
        score = self.matcher(features, features).float()
        target = (labels[:, None] == labels[None, :]).float()
        loss = F.binary_cross_entropy_with_logits(score, target, reduction="none").sum(dim=1)
        min_pos, max_neg = _hardest_pairs(score.detach(), labels)
        return loss, (min_pos >= max_neg).float()
