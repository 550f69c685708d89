"""Pictures of results: ranked lists of the evaluation, and, in their own modules, the thumbnail page
(`thumbnail_page`), the correspondence picture of a match (`correspondences`) and training curves."""

from qaconv.viz.ranked_lists import ranked_list_strip, select_queries, write_ranked_lists

__all__ = ["ranked_list_strip", "select_queries", "write_ranked_lists"]
