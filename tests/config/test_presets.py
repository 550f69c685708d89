"""Recipes: scratch is chosen without pretrained weights, user options win over a preset, the demo preset."""

import pytest

from qaconv.config import recipe_config
from qaconv.config.presets import DEMO, SCRATCH, departures
from qaconv.errors import QAConvError


def test_auto_picks_scratch_without_pretrained_weights_and_paper_otherwise():
    scratch = recipe_config({"pretrained": "none"})
    assert scratch.recipe == "scratch"
    assert (scratch.optimization.freeze_bn, scratch.optimization.logit_scale_floor) == (False, 1.0)
    assert scratch.optimization.warmup_loss == "pairwise"
    for options in ({}, {"pretrained": "weights.pth"}, {"pretrained": None, "init_from": "runs/warm"}):
        paper = recipe_config(options)
        assert paper.recipe == "paper"
        assert (paper.optimization.freeze_bn, paper.optimization.logit_scale_floor) == (True, 0.0)
        assert paper.optimization.warmup_loss == "same"


def test_options_given_win_over_the_recipe():
    config = recipe_config({"pretrained": None, "freeze_bn": True, "optimization.lr": "1e-3"})
    assert (config.optimization.freeze_bn, config.optimization.lr) == (True, 0.001)
    assert config.optimization.backbone_lr_mult == SCRATCH["optimization.backbone_lr_mult"]


def test_the_recipe_can_be_chosen_against_auto():
    assert recipe_config({"pretrained": None, "recipe": "paper"}).optimization.logit_scale_floor == 0.0
    with pytest.raises(QAConvError, match="--recipe must be one of auto, paper, scratch"):
        recipe_config({"recipe": "fast"})


def test_the_demo_preset_is_a_valid_scratch_run():
    config = recipe_config(DEMO)
    assert config.recipe == "scratch" and config.model.arch == "resnet18"
    assert "logit_scale_floor 1.0" in departures("scratch")
