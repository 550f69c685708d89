"""Top-N lists of the report: junk left out, nearest first, padded."""

import numpy as np

from qaconv.engine.evaluate import top_n
from tests.engine.evaluate.problems import sides


def test_top_n_leaves_out_same_id_same_camera_and_pads():
    dist = np.array([[0.1, 0.5, 0.2, 0.2, 0.9], [0.3, 0.3, 0.3, 0.0, 0.1]])
    q_pids, q_cams = np.array([1, 2]), np.array([0, 1])
    g_pids, g_cams = np.array([1, 2, 1, 2, 2]), np.array([0, 0, 1, 1, 1])
    # row 0: gallery 0 is junk (pid 1, cam 0); row 1: gallery 3 and 4 are junk (pid 2, cam 1)
    query, gallery = sides(q_pids, q_cams, g_pids, g_cams)
    np.testing.assert_array_equal(top_n(dist, query, gallery, 3), [[2, 3, 1], [0, 1, 2]])
    np.testing.assert_array_equal(top_n(dist, query, gallery, 5)[1], [0, 1, 2, -1, -1])
