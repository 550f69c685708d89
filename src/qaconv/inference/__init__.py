"""Inference with a trained model: the ReID API, local correspondences, gallery index and search, export."""

from qaconv.inference.api import Match, ReID
from qaconv.inference.correspondence import Correspondences, local_correspondences, plot_correspondences
from qaconv.inference.export import EvalMatcher, export_model
from qaconv.inference.index import GalleryIndex, SearchResult, build_index, global_descriptors, search

__all__ = [
    "Correspondences",
    "EvalMatcher",
    "GalleryIndex",
    "Match",
    "ReID",
    "SearchResult",
    "build_index",
    "export_model",
    "global_descriptors",
    "local_correspondences",
    "plot_correspondences",
    "search",
]
