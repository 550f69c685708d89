"""Recipes: scratch is chosen without pretrained weights, user options win over a preset, the demo preset."""

import pytest

from qaconv.config import recipe_config
from qaconv.config.presets import DEMO, SCRATCH, departures
from qaconv.errors import QAConvError


def test_auto_picks_scratch_without_pretrained_weights_warm_for_a_warm_start_and_paper_otherwise():
    scratch = recipe_config({"pretrained": "none"})
    assert scratch.recipe == "scratch"
    assert (scratch.optimization.freeze_bn, scratch.optimization.logit_scale_floor) == (False, 1.0)
    assert (scratch.optimization.warmup_loss, scratch.sampler.gs_warmup) == ("pairwise", "auto")
    for options in ({}, {"pretrained": "weights.pth"}):
        paper = recipe_config(options)
        assert paper.recipe == "paper"
        assert (paper.optimization.freeze_bn, paper.optimization.logit_scale_floor) == (True, 0.0)
        assert (paper.optimization.warmup_loss, paper.sampler.gs_warmup) == ("same", "0")
    for options in ({"pretrained": None, "init_from": "runs/warm"}, {"init_from": "runs/warm"}):
        warm = recipe_config(options)
        assert warm.recipe == "warm"
        assert (warm.optimization.freeze_bn, warm.optimization.backbone_lr_mult) == (True, 0.1)  # the paper's
        assert (warm.optimization.logit_scale_floor, warm.sampler.gs_warmup) == (1.0, "0")


def test_options_given_win_over_the_recipe():
    config = recipe_config({"pretrained": None, "freeze_bn": True, "optimization.lr": "1e-3"})
    assert (config.optimization.freeze_bn, config.optimization.lr) == (True, 0.001)
    assert config.optimization.backbone_lr_mult == SCRATCH["optimization.backbone_lr_mult"]


def test_the_recipe_can_be_chosen_against_auto():
    assert recipe_config({"pretrained": None, "recipe": "paper"}).optimization.logit_scale_floor == 0.0
    with pytest.raises(QAConvError, match="--recipe must be one of auto, paper, warm, scratch"):
        recipe_config({"recipe": "fast"})


def test_the_demo_preset_is_a_valid_scratch_run():
    config = recipe_config(DEMO)
    assert config.recipe == "scratch" and config.model.arch == "resnet18"
    assert "logit_scale_floor 1.0" in departures(config)


def test_departures_show_the_values_used_when_the_user_changed_one():
    config = recipe_config({"pretrained": None, "logit_scale_floor": 2.0, "gs_warmup": 3})
    assert "logit_scale_floor 2.0" in departures(config) and "gs_warmup 3" in departures(config)
    assert departures(recipe_config({})) == ""
