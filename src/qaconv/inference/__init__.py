"""Inference with a trained model: the ReID API, local correspondences, gallery index and search, export."""

from qaconv.inference.api import Match, ReID
from qaconv.inference.correspondence import Correspondences, local_correspondences, plot_correspondences
from qaconv.inference.export import export_model
from qaconv.inference.index import GalleryIndex
from qaconv.inference.search import SearchResult, global_descriptors, search
from qaconv.inference.shards import Gallery, build_shards, update_shards

__all__ = [
    "Correspondences",
    "Gallery",
    "GalleryIndex",
    "Match",
    "ReID",
    "SearchResult",
    "build_shards",
    "export_model",
    "global_descriptors",
    "local_correspondences",
    "plot_correspondences",
    "search",
    "update_shards",
]
