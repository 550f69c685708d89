"""The run's helpers: the recipe line that `qaconv train` prints, and the run folder's preparation."""

import pytest

from qaconv.config import recipe_config
from qaconv.engine.run import describe_recipe, prepare_run_dir
from qaconv.errors import QAConvError


def test_the_recipe_line_names_the_values_used_and_advises_a_warmup_when_graph_sampling_has_none():
    bare = describe_recipe(recipe_config({"pretrained": None}))
    assert bare.startswith("recipe: scratch") and "warmup_loss pairwise" in bare and "gs_warmup auto" in bare
    assert "--gs-warmup 0:" not in bare
    none = describe_recipe(recipe_config({"pretrained": None, "gs_warmup": 0}))
    assert "gs_warmup 0" in none and "--gs-warmup 0: graph sampling starts on random features" in none
    assert "--gs-warmup 0:" not in describe_recipe(recipe_config({"pretrained": None, "gs_warmup_epochs": 2}))
    assert "--gs-warmup 0:" not in describe_recipe(recipe_config({"pretrained": None, "sampler": "pk", "gs_warmup": 0}))
    assert describe_recipe(recipe_config({})) == "recipe: paper (QAConv 2.1)"
    warm = describe_recipe(recipe_config({"init_from": "runs/a"}))
    assert warm == "recipe: warm (a warm start; docs/training.md): logit_scale_floor 1.0"


def test_run_folder_of_another_run_is_refused(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(QAConvError, match="already holds a run.*--resume"):
        prepare_run_dir(tmp_path, overwrite=False)
    prepare_run_dir(tmp_path, overwrite=True)
    assert not (tmp_path / "checkpoint.pt").exists()
