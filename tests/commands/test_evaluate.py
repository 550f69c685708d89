"""`qaconv evaluate` end to end on a tiny synthetic Market-layout set with a tiny random model: results, scores,
report, re-ranking and TLift, the feature cache, one-line errors; and with folders of the wrong kind and outputs
that would not fit (audit cases D1-D5 of docs/reliability.md)."""

import json
import shutil
from collections import namedtuple

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from qaconv.cli import main
from qaconv.config import ModelConfig
from qaconv.data import create_dataset
from qaconv.data.synthetic import SynthConfig, generate
from qaconv.engine.checkpoint import build_model, model_payload, save_checkpoint
from qaconv.engine.features import extract_feature_maps
from qaconv.folders import DATASET, INDEX, mark
from qaconv.lock import FolderLock
from qaconv.matching import QAConv
from qaconv.metrics import evaluate_rank

CONFIG = ModelConfig(arch="resnet18", ibn=None, final_layer="layer3", neck=16, height=64, width=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    generate(root / "data" / "market1501", SynthConfig(num_ids=12, num_cams=3, seed=0, height=64, width=32), workers=1)
    torch.manual_seed(0)
    model, matcher = build_model(CONFIG)
    with torch.no_grad():
        matcher.logit_bn.running_mean.fill_(5.0)  # negative logits, as a trained matcher gives most pairs
    save_checkpoint(model_payload(model, matcher, CONFIG), root / "run" / "checkpoint.pt")
    return root


def evaluate(setup, *extra):
    return main(
        [
            "evaluate",
            "--checkpoint",
            str(setup / "run"),
            "--data-dir",
            str(setup / "data"),
            "--workers",
            "0",
            "--batch-size",
            "16",
            *extra,
        ]
    )


def independent_scores(setup):
    """Raw scores by another route: the model's maps and the matcher's own forward, all pairs at once."""
    payload = torch.load(setup / "run" / "checkpoint.pt", weights_only=False)
    model, matcher = build_model(CONFIG)
    model.load_state_dict(payload["model"])
    matcher.load_state_dict(payload["matcher"])
    ds = create_dataset("market1501", setup / "data" / "market1501")
    q = extract_feature_maps(model, ds.query, height=64, width=32)
    g = extract_feature_maps(model, ds.gallery, height=64, width=32)
    with torch.no_grad():
        return ds, matcher.eval()(q, g).numpy()


def test_evaluate_writes_results_scores_and_report(setup, capsys):
    results = setup / "run" / "results.json"
    results.write_text(json.dumps({"other_set": {"raw": {"mAP": 0.5}}}))
    assert evaluate(setup, "--testset", "market", "--save-scores", "--report", "3") == 0
    out = capsys.readouterr().out
    assert "market1501: " in out and "Rank-1" in out and "raw" in out

    ds, scores = independent_scores(setup)
    data = json.loads(results.read_text())
    assert data["other_set"] == {"raw": {"mAP": 0.5}}  # merged, not overwritten
    entry = data["market1501"]
    assert (entry["num_query"], entry["num_gallery"], entry["time_info"]) == (len(ds.query), len(ds.gallery), True)
    q_pids, q_cams = [r.pid for r in ds.query], [r.camid for r in ds.query]
    g_pids, g_cams = [r.pid for r in ds.gallery], [r.camid for r in ds.gallery]
    expected = evaluate_rank(-scores, q_pids, g_pids, q_cams, g_cams)
    assert entry["raw"]["mAP"] == pytest.approx(expected.mAP, abs=1e-9)
    assert entry["raw"]["rank1"] == pytest.approx(expected.rank1, abs=1e-9)
    assert entry["checkpoint"].endswith("checkpoint.pt") and entry["options"]["save_scores"] is True
    assert set(entry["seconds"]) == {"extract", "score"}

    mat = scipy.io.loadmat(setup / "run" / "market1501_score.mat")
    np.testing.assert_allclose(mat["score"], scores, atol=1e-4)
    np.testing.assert_array_equal(mat["prob_ids"].ravel(), q_pids)
    np.testing.assert_array_equal(mat["gal_cams"].ravel(), g_cams)
    np.testing.assert_allclose(mat["gal_time"].ravel(), [r.time for r in ds.gallery])
    assert mat["prob_list"].shape == (len(ds.query), 1) and str(mat["prob_list"][0, 0][0]) == ds.query[0].path
    with np.load(setup / "run" / "market1501_score.npz") as npz:
        np.testing.assert_allclose(npz["score"], scores, atol=1e-4)
        assert list(npz["gal_list"]) == [r.path for r in ds.gallery]

    report = setup / "run" / "report" / "market1501"
    page = (report / "index.html").read_text()
    assert "best queries" in page and "worst queries" in page and page.count("data:image/jpeg;base64") >= 2
    with Image.open(report / "ranked_lists.png") as img:
        assert img.width == 4 * (64 + 8) + 4 * 6  # the query and 3 ranked thumbnails
    assert entry["files"] == [
        "market1501_score.npz",
        "market1501_score.mat",
        "report/market1501/index.html",
        "report/market1501/ranked_lists.png",
    ]


def test_rerank_and_tlift_add_stages_that_differ_from_raw(setup, tmp_path):
    assert evaluate(setup, "--testset", "market1501", "--rerank", "--tlift", "--out", str(tmp_path)) == 0
    entry = json.loads((tmp_path / "results.json").read_text())["market1501"]
    assert {"raw", "rerank", "tlift"} <= set(entry) and {"rerank", "tlift"} <= set(entry["seconds"])
    stages = [(entry[s]["mAP"], entry[s]["mINP"], entry[s]["rank5"]) for s in ("raw", "rerank", "tlift")]
    assert len(set(stages)) == 3


def test_a_folder_without_time_skips_tlift_and_the_cache_is_reused(setup, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "notime"
    for split in ("query", "bounding_box_test"):
        (folder / split).mkdir(parents=True)
        for i, path in enumerate(sorted((setup / "data" / "market1501" / split).glob("*.jpg"))):
            pid, cam = path.name.split("_")[:2]
            shutil.copy(path, folder / split / f"{pid}_{cam[:2]}_{i:04d}.jpg")  # no session/frame: no time
    cache = tmp_path / "cache"
    args = ["--testset", str(folder), "--tlift", "--out", str(tmp_path / "out"), "--cache-dir", str(cache)]
    assert evaluate(setup, *args) == 0
    assert "TLift skipped" in capsys.readouterr().out
    entry = json.loads((tmp_path / "out" / "results.json").read_text())["notime"]
    assert "tlift" not in entry and entry["time_info"] is False
    assert len(list(cache.glob("notime-*.pt"))) == 2

    def no_extraction(*args, **kwargs):
        raise AssertionError("the cached maps should have been used")

    monkeypatch.setattr("qaconv.engine.evaluate.cache.extract_feature_maps", no_extraction)
    assert evaluate(setup, *args) == 0
    again = json.loads((tmp_path / "out" / "results.json").read_text())["notime"]
    assert again["raw"] == entry["raw"]


def test_errors_reach_the_user_as_one_line(setup, tmp_path, capsys):
    assert evaluate(setup, "--testset", "nosuchset") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown data set 'nosuchset'" in err and "market1501" in err

    # every query's identity is in the gallery only under the query's own camera: no valid query
    folder = tmp_path / "novalid"
    for split in ("query", "bounding_box_test"):
        (folder / split).mkdir(parents=True)
    image = next((setup / "data" / "market1501" / "query").glob("*.jpg"))
    for name in ("0001_c1_0001.jpg", "0002_c2_0002.jpg"):
        shutil.copy(image, folder / "query" / name)
    for name in ("0001_c1_0003.jpg", "0002_c2_0004.jpg", "0003_c1_0005.jpg"):
        shutil.copy(image, folder / "bounding_box_test" / name)
    assert evaluate(setup, "--testset", str(folder), "--out", str(tmp_path)) == 2
    assert "no valid query in test set 'novalid'" in capsys.readouterr().err

    shutil.rmtree(folder / "query")
    assert evaluate(setup, "--testset", str(folder), "--out", str(tmp_path)) == 2
    assert "test set novalid has no query images" in capsys.readouterr().err

    # a checkpoint whose matcher was made for another feature-map size
    model, _ = build_model(CONFIG)
    save_checkpoint(model_payload(model, QAConv(16, 3, 2), CONFIG), tmp_path / "bad" / "checkpoint.pt")
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "bad"), "--testset", "market1501"])
    assert rc == 2
    assert "matcher does not fit: fc.weight has shape [1, 6] in the checkpoint but [1, 8]" in capsys.readouterr().err

    assert evaluate(setup, "--testset", "market1501", "--dtype", "float16", "--device", "cpu") == 2
    assert "--dtype float16 needs a CUDA device" in capsys.readouterr().err


def copy_set(setup, folder):
    """A Market-style copy of the synthetic test set (only the test splits)."""
    for split in ("query", "bounding_box_test"):
        shutil.copytree(setup / "data" / "market1501" / split, folder / split)
    return folder


def test_cached_maps_are_not_reused_after_images_change_under_their_names(setup, tmp_path):
    # audit c1-c3: the images of a cached gallery are replaced, keeping their names
    folder = copy_set(setup, tmp_path / "ctest")
    cache = ["--testset", str(folder), "--cache-dir", str(tmp_path / "cache")]
    assert evaluate(setup, *cache, "--out", str(tmp_path / "c1")) == 0
    gallery = sorted((folder / "bounding_box_test").glob("*.jpg"))
    for path in gallery[1:]:
        shutil.copy(gallery[0], path)
    assert evaluate(setup, *cache, "--out", str(tmp_path / "c2")) == 0
    assert evaluate(setup, "--testset", str(folder), "--out", str(tmp_path / "c3")) == 0
    c1, c2, c3 = (json.loads((tmp_path / c / "results.json").read_text())["ctest"]["raw"] for c in ("c1", "c2", "c3"))
    assert c2 == c3 and c2 != c1
    assert len(list((tmp_path / "cache").glob("ctest-gallery-*.pt"))) == 2


def test_a_cache_dir_that_is_a_file_fails_before_any_extraction(setup, tmp_path, capsys, monkeypatch):
    # audit eo17
    def no_extraction(*args, **kwargs):
        raise AssertionError("nothing should be extracted")

    monkeypatch.setattr("qaconv.engine.evaluate.cache.extract_feature_maps", no_extraction)
    (tmp_path / "file").write_text("x")
    out = tmp_path / "out"
    assert evaluate(setup, "--testset", "market1501", "--cache-dir", str(tmp_path / "file"), "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--cache-dir" in err and "is a file, not a folder" in err
    assert not out.exists()


def test_test_sets_with_one_folder_name_keep_separate_results(setup, tmp_path, capsys):
    # audit ev8: syn/sb,other/sb used to share one results.json entry
    a = copy_set(setup, tmp_path / "syn" / "sb")
    b = copy_set(setup, tmp_path / "other" / "sb")
    for path in sorted((b / "query").glob("*.jpg"))[1:]:
        path.unlink()  # so the two entries differ
    out = tmp_path / "out"
    assert evaluate(setup, "--testset", f"{a},{b}", "--out", str(out), "--save-scores") == 0
    assert "labelled syn/sb, other/sb" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert set(data) == {"syn/sb", "other/sb"} and data["other/sb"]["num_query"] == 1
    assert data["syn/sb"]["num_query"] > 1 and data["syn/sb"]["files"][0] == "syn-sb_score.npz"
    assert (out / "syn-sb_score.npz").is_file() and (out / "other-sb_score.npz").is_file()


def test_a_second_evaluation_into_a_locked_folder_is_refused_before_any_work(setup, tmp_path, capsys, monkeypatch):
    # audit concur1-3: two evaluations into one --out used to lose an entry; the second is now refused
    def no_extraction(*args, **kwargs):
        raise AssertionError("nothing should be extracted")

    monkeypatch.setattr("qaconv.engine.evaluate.cache.extract_feature_maps", no_extraction)
    out = tmp_path / "out"
    out.mkdir()
    before = json.dumps({"earlier": {"raw": {"mAP": 0.5}}})
    (out / "results.json").write_text(before)
    (out / ".results.json.x1.tmp").write_text("{half")  # a killed evaluation's partial write
    with FolderLock(out, "qaconv evaluate"):
        assert evaluate(setup, "--testset", "market1501", "--out", str(out)) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"{out} is in use by another qaconv process (pid " in err
        assert "qaconv evaluate" in err
    assert (out / "results.json").read_text() == before
    assert (out / ".results.json.x1.tmp").exists()  # only the lock holder cleans up


def test_an_out_that_is_a_file_is_refused(setup, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert evaluate(setup, "--testset", "market1501", "--out", str(tmp_path / "file")) == 2
    assert "--out " in (err := capsys.readouterr().err) and "exists and is not a folder" in err
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--K", "1000", "--tlift"], "--K must be at most 100"),
        (["--alpha", "-1"], "--alpha must be"),
        (["--lambda-value", "2", "--rerank"], "--lambda-value must be at most 1"),
        (["--k2", "0", "--rerank"], "--k2 must be at least 1"),
    ],
)
def test_parameters_out_of_range_are_refused(setup, tmp_path, capsys, flags, message):
    # audit eo10 / eo13
    assert evaluate(setup, "--testset", "market1501", "--out", str(tmp_path), *flags) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "results.json").exists()


# ------------------------------------------------------------------------- audit cases D1-D5 (docs/reliability.md)


def evaluate_synthetic(checkpoint, synthetic, *extra):
    return main(["evaluate", "--checkpoint", str(checkpoint), "--testset", str(synthetic), "--device", "cpu",
                 "--workers", "0", *map(str, extra)])  # fmt: skip


@pytest.mark.parametrize("kind", [DATASET, INDEX])
def test_d1_d2_results_are_not_written_into_a_folder_of_another_kind(checkpoint, synthetic, tmp_path, capsys, kind):
    folder = tmp_path / "taken"
    folder.mkdir()
    mark(folder, kind)
    assert evaluate_synthetic(checkpoint, synthetic, "--out", folder) == 2
    err = capsys.readouterr().err
    assert f"--out {folder} is a qaconv {kind.name} folder, not an evaluation" in err and err.count("\n") == 1


def test_d3_a_data_set_folder_given_as_the_checkpoint_is_named(synthetic, capsys):
    assert evaluate_synthetic(synthetic, synthetic) == 2
    assert f"checkpoint {synthetic} is a qaconv data set folder, not a run folder" in capsys.readouterr().err


def test_d4_a_run_folder_given_as_the_test_set_is_named(checkpoint, tmp_path, capsys):
    run = shutil.copytree(checkpoint, tmp_path / "run")
    assert evaluate_synthetic(checkpoint, run) == 2
    assert f"{run} is a qaconv run folder, not a data set" in capsys.readouterr().err


def test_d5_score_files_the_disk_has_no_room_for_are_refused_before_any_feature_is_extracted(
    checkpoint, synthetic, tmp_path, capsys, monkeypatch
):
    import shutil as shutil_module

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10**9, 10**9 - 10, 10))
    assert evaluate_synthetic(checkpoint, synthetic, "--out", tmp_path / "ev", "--save-scores") == 2
    err = capsys.readouterr().err
    assert "--save-scores will need about" in err and "which has 0 MiB free" in err
    assert not list((tmp_path / "ev").glob("*_score.*"))
