"""One image: fixed by its key (whatever else was rendered before), a person or only the scene."""

from __future__ import annotations

import numpy as np

from qaconv.data.synthetic import SynthConfig
from qaconv.data.synthetic.backgrounds import background
from qaconv.data.synthetic.planning import make_plan
from qaconv.data.synthetic.rendering import RenderJob, render, render_image
from qaconv.data.synthetic.streams import KIND_DISTRACTOR, KIND_JUNK, T_EXTRA, T_IMAGE


def _setup():
    config = SynthConfig(num_ids=4, num_cams=2, images_per_id=4, height=64, width=32, seed=2)
    plan = make_plan(config)
    job = RenderJob(config.seed, config.style, config.height, config.width, plan.cameras)
    return plan, job, background(job.style, job.cameras[0], job.height, job.width)


def test_an_image_depends_only_on_its_key():
    plan, job, scene = _setup()
    ident = plan.identities[1]
    first = np.asarray(render_image(job, scene, 0, (T_IMAGE, 1, 0), ident))
    render_image(job, scene, 0, (T_IMAGE, 1, 1), ident)  # another image in between
    assert np.array_equal(np.asarray(render_image(job, scene, 0, (T_IMAGE, 1, 0), ident)), first)
    assert not np.array_equal(np.asarray(render_image(job, scene, 0, (T_IMAGE, 1, 1), ident)), first)
    assert first.shape == (64, 32, 3)


def test_extra_images_draw_strangers_from_their_own_stream():
    plan, job, scene = _setup()
    for kind in (KIND_DISTRACTOR, KIND_JUNK):
        key = (T_EXTRA, kind, 0)
        # The identity passed in is ignored: an extra image draws its own person (or none, for junk).
        a = np.asarray(render_image(job, scene, 0, key, plan.identities[1], misaligned=True))
        b = np.asarray(render_image(job, scene, 0, key, None, misaligned=True))
        assert np.array_equal(a, b)


def test_the_person_is_in_the_image():
    plan, job, scene = _setup()
    magenta = [1.0, 0.0, 1.0]
    ident = {**plan.identities[1], "upper1": magenta, "upper2": magenta, "pattern": "plain"}

    def magenta_pixels(person):
        rgb = np.asarray(render(job, 0, scene, person, np.random.default_rng(0)), np.int32)
        return int(((rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 2] - rgb[..., 1] > 60)).sum())

    assert magenta_pixels(None) == 0
    assert magenta_pixels(ident) > 0.05 * job.height * job.width
