"""`mpts-fast select` and mpts_fast.select_next: a real annotation round end to end on tiny generated files, the same
picks as the ops on the same inputs, the same picks for the same seed, and a clear error for each bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mpts_fast
from mpts_fast import ops
from mpts_fast.cli.main import main
from mpts_fast.select import InputError, select_next
from mpts_fast.strategies import get_strategy
from mpts_fast.training import derive_seed

N, C, D = 120, 4, 6


@pytest.fixture
def files(tmp_path, gen):
    """pool.npy (N, D), emb.npy, probs.npy (N, C), samples.npy (5, N, C), labels.csv / labels.json (12 labels)."""
    pool = torch.randn(N, D, generator=gen)
    emb = torch.randn(N, 3, generator=gen)
    probs = torch.softmax(torch.randn(N, C, generator=gen) * 2, 1)
    samples = torch.softmax(torch.randn(5, N, C, generator=gen) * 2, 2)
    for name, t in (("pool", pool), ("emb", emb), ("probs", probs), ("samples", samples)):
        np.save(tmp_path / f"{name}.npy", t.numpy())
    labeled = {int(i): int(i) % C for i in torch.randperm(N, generator=gen)[:12]}
    (tmp_path / "labels.csv").write_text("index,label\n" + "".join(f"{i},{y}\n" for i, y in labeled.items()))
    (tmp_path / "labels.json").write_text(json.dumps({str(i): y for i, y in labeled.items()}))
    return {"dir": tmp_path, "pool": pool, "emb": emb, "probs": probs, "samples": samples, "labeled": labeled}


def _mask(labeled):
    mask = torch.zeros(N, dtype=torch.bool)
    mask[list(labeled)] = True
    return mask


def _cli(*args):
    return CliRunner().invoke(main, ["select", *map(str, args)])


def test_cli_trains_a_backbone_and_writes_picks_and_settings(files):
    d = files["dir"]
    args = ["-p", d / "pool.npy", "-l", d / "labels.csv", "-b", 7, "-m", "mlp", "--epochs", 2, "-q"]
    res = _cli(*args, "-o", d / "a.csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((d / "a.csv").open()))
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 8)]
    picks = [int(r["index"]) for r in rows]
    assert len(set(picks)) == 7 and not set(picks) & set(files["labeled"])
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)  # mpts: entropy of the snapshot posterior, highest first
    settings = json.loads((d / "a.settings.json").read_text())
    assert settings["strategy"] == "mpts" and settings["model"] == "mlp" and settings["budget"] == 7
    assert settings["n_labeled"] == 12 and settings["score"] == "entropy" and "provenance" in settings
    again = _cli(*args, "-o", d / "b.json")  # same inputs and seed: same picks (JSON this time)
    assert again.exit_code == 0, again.output
    saved = json.loads((d / "b.json").read_text())
    assert [p["index"] for p in saved["picks"]] == picks and saved["settings"]["seed"] == 0
    refused = _cli(*args, "-o", d / "a.csv")
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    python = mpts_fast.select_next(str(d / "pool.npy"), str(d / "labels.json"), budget=7, model="mlp", epochs=2)
    assert python.indices.tolist() == picks


def test_precomputed_scores_match_the_ops(files):
    d, lab = files["dir"], files["labeled"]
    unl = (~_mask(lab)).nonzero().squeeze(1)
    sel = select_next(labeled=lab, budget=9, strategy="entropy", probs=str(d / "probs.npy"))
    ent = ops.snapshot_uncertainty(files["probs"].log().unsqueeze(0)).entropy[unl].double()
    order = torch.sort(ent, descending=True, stable=True).indices[:9]
    assert sel.indices.tolist() == unl[order].tolist()
    np.testing.assert_allclose(sel.scores, ent[order].numpy(), rtol=1e-5)
    margin = select_next(labeled=lab, budget=5, strategy="margin", probs=files["probs"].numpy())
    assert margin.score_name == "margin" and list(margin.scores) == sorted(margin.scores)  # smallest margin first


def test_posterior_samples_score_like_snapshot_uncertainty(files):
    lab = files["labeled"]
    unl = (~_mask(lab)).nonzero().squeeze(1)
    s = ops.snapshot_uncertainty(files["samples"].double().log())
    for strategy, field in (("bald", "bald"), ("ensemble_variance", "variance"), ("mpts", "entropy")):
        sel = select_next(labeled=lab, budget=6, strategy=strategy, probs=str(files["dir"] / "samples.npy"))
        expect = getattr(s, field)[unl]
        order = torch.sort(expect, descending=True, stable=True).indices[:6]
        assert sel.indices.tolist() == unl[order].tolist(), strategy
        np.testing.assert_allclose(sel.scores, expect[order].numpy(), rtol=1e-4, atol=1e-6)


def test_coreset_and_badge_match_the_ops(files):
    lab, emb, probs = files["labeled"], files["emb"], files["probs"]
    sel = select_next(labeled=lab, budget=8, strategy="coreset", embeddings=emb)
    assert sel.indices.tolist() == ops.kcenter_greedy(emb, 8, labeled=_mask(lab)).tolist()
    centres = list(lab)  # each score: the distance k-center maximised at that pick
    for i, s in zip(sel.indices.tolist(), sel.scores):
        assert s == pytest.approx(float(torch.cdist(emb[i:i + 1].double(), emb[centres].double()).min()), rel=1e-9)
        centres.append(i)
    assert list(sel.scores) == sorted(sel.scores, reverse=True) and sel.score_name == "distance_to_nearest_centre"
    unl = (~_mask(lab)).nonzero().squeeze(1)
    badge = select_next(labeled=lab, budget=8, strategy="badge", embeddings=emb, probs=probs, seed=3)
    gen = torch.Generator().manual_seed(derive_seed(3, "select"))
    assert badge.indices.tolist() == unl[ops.badge_select(probs[unl], emb[unl], 8, generator=gen)].tolist()
    cold = select_next(budget=4, embeddings=emb)  # no labels yet: coreset by default
    assert cold.settings["strategy"] == "coreset" and cold.indices.tolist() == ops.kcenter_greedy(emb, 4).tolist()


def test_same_seed_same_picks_other_seed_other_picks(files):
    kw = dict(labeled=files["labeled"], budget=10, strategy="random", embeddings=files["emb"])
    assert select_next(**kw, seed=1).indices.tolist() == select_next(**kw, seed=1).indices.tolist()
    assert select_next(**kw, seed=1).indices.tolist() != select_next(**kw, seed=2).indices.tolist()


def test_class_names_map_labels(files, tmp_path):
    (tmp_path / "names.txt").write_text("ant\nbee\ncat\ndog\n")
    (tmp_path / "named.csv").write_text("index,label\n0,bee\n5,dog\n")
    sel = select_next(labeled=str(tmp_path / "named.csv"), budget=2, strategy="entropy", probs=files["probs"],
                      class_names=str(tmp_path / "names.txt"))
    assert sel.settings["class_names"] == ["ant", "bee", "cat", "dog"] and 0 not in sel.indices
    with pytest.raises(InputError, match="label 'eel' is not one of the class names"):
        select_next(labeled={0: "eel"}, budget=2, probs=files["probs"], class_names=["ant", "bee", "cat", "dog"])


def _refused(tmp_path, content: str, suffix=".csv", **kw) -> str:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        select_next(labeled=str(path), budget=2, strategy="entropy", probs=np.full((N, C), 0.25, np.float32), **kw)
    assert info.value.field == "labeled"
    return str(info.value)


def test_bad_label_files(tmp_path):
    assert "line 3: pool index 500 is outside the pool (0..119)" in _refused(tmp_path, "index,label\n1,0\n500,1\n")
    assert "pool index 1 is labeled twice (first at" in _refused(tmp_path, "1,0\n1,1\n")
    assert "pool index 'x' is not an integer" in _refused(tmp_path, "index,label\nx,1\n")
    assert "label 9 is out of range; expected class ids 0..3" in _refused(tmp_path, "2,9\n")
    assert "not valid JSON" in _refused(tmp_path, "{1: 2", suffix=".json")
    assert "expected [index, label]" in _refused(tmp_path, "[[1, 2, 3]]", suffix=".json")
    assert "expected a .csv or .json" in _refused(tmp_path, "1,2", suffix=".xlsx")
    with pytest.raises(InputError, match="does not exist"):
        select_next(labeled=str(tmp_path / "none.csv"), budget=2, probs=np.full((N, C), 0.25, np.float32))


def test_bad_arrays_and_settings(files, tmp_path):
    probs, emb = files["probs"], files["emb"]

    def field_of(**kw):
        with pytest.raises(InputError) as info:
            select_next(**{"labeled": files["labeled"], "budget": 3, **kw})
        return info.value.field, str(info.value)

    assert field_of(probs=torch.randn(N, C))[0] == "probs"  # logits, not probabilities
    f, msg = field_of(probs=probs, embeddings=emb[:50], strategy="badge")
    assert f == "probs" and "embeddings has 50 rows" in msg and f"probs has {N} rows" in msg
    assert field_of(probs=probs, strategy="deepfool")[0] == "strategy"
    assert "S >= 2" in field_of(probs=probs, strategy="bald")[1]
    assert "needs your model's embeddings" in field_of(probs=probs, strategy="coreset")[1]
    assert field_of(probs=probs, budget=N)[0] == "budget"
    assert field_of(probs=probs, budget=0)[0] == "budget"
    assert field_of(probs=probs, strategy="nope")[0] == "strategy"
    assert field_of(probs=probs, model="mlp")[0] == "model"
    assert field_of(model="mlp")[0] == "pool"
    assert field_of(pool=files["pool"], model="mlp", num_classes=2)[0] == "labeled"  # label 3 of 2 classes
    assert field_of(pool=files["pool"], model="mlp", epochs=0)[0] == "epochs"
    assert field_of(pool=np.array([["a", "b"]] * N), model="mlp")[0] == "pool"
    nan_pool = files["pool"].clone()
    nan_pool[7, 1] = float("nan")
    assert "NaN or infinity in row 7" in field_of(pool=nan_pool, model="mlp")[1]
    assert field_of(probs=probs, num_classes=3)[0] == "num_classes"


def test_strategy_reading_unlabeled_labels_is_refused(files, monkeypatch):
    monkeypatch.setattr(get_strategy("entropy"), "uses_unlabeled_labels", True, raising=False)
    with pytest.raises(InputError, match="labels of unlabeled pool items"):
        select_next(labeled=files["labeled"], budget=2, strategy="entropy", probs=files["probs"])


def test_cli_errors_name_the_option(files):
    d = files["dir"]
    res = _cli("-l", d / "labels.csv", "-b", 3, "--probs", d / "pool.npy", "-o", d / "x.csv")
    assert res.exit_code == 2 and "'--probs'" in res.output and "not logits" in res.output
    res = _cli("-l", d / "labels.csv", "-b", 3, "-m", "mlp", "--probs", d / "probs.npy", "-o", d / "x.csv")
    assert res.exit_code == 2 and "one or the other" in res.output
    res = _cli("-l", d / "labels.csv", "-b", 3, "--embeddings", d / "emb.npy", "--epochs", 3, "-o", d / "x.csv")
    assert res.exit_code == 2 and "'--epochs'" in res.output
    res = _cli("-l", d / "labels.csv", "-b", 3, "--probs", d / "probs.npy", "-s", "deepfool", "-o", d / "x.csv")
    assert res.exit_code == 2 and "'--strategy'" in res.output and "--model" in res.output
    res = _cli("-l", d / "labels.csv", "-b", 3, "--probs", d / "probs.npy", "-o", d / "x.txt")
    assert res.exit_code == 2 and "'--out'" in res.output
    res = _cli("-l", d / "labels.csv", "-b", 3, "--probs", d / "probs.npy", "-o", d / "ok.csv")
    assert res.exit_code == 0 and "entropy picked 3" in res.output


def test_float32_pool_is_mapped_not_copied(files):
    from mpts_fast.data import own
    from mpts_fast.select import inputs

    mapped = own.open_arrays(files["dir"] / "pool.npy")["x"]
    assert isinstance(mapped, np.memmap)
    assert own._float_features(mapped).data_ptr() == mapped.ctypes.data  # the tensor reads the mapping itself
    x, where = inputs.pool_tensor(str(files["dir"] / "pool.npy"))
    assert where == str(files["dir"] / "pool.npy") and torch.equal(x, files["pool"])


def test_uint8_image_pool_trains_a_convolutional_backbone(tmp_path, gen):
    images = torch.randint(0, 256, (40, 8, 8, 3), generator=gen, dtype=torch.uint8).numpy()  # channels last
    np.save(tmp_path / "images.npy", images)
    sel = select_next(str(tmp_path / "images.npy"), {i: i % 2 for i in range(6)}, budget=4, model="resnet18",
                      strategy="entropy", epochs=1, batch_size=8)
    assert len(set(sel.indices.tolist())) == 4 and min(sel.indices) >= 6
    assert sel.settings["model"] == "resnet18" and sel.settings["num_classes"] == 2
