"""The AutoDistil search end to end through the driver: a SuperLM trained by the search (or
reused), subnets scored inside it, the best exported as a Hugging Face directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from searchkd.errors import SearchKDError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _text import write_text_setup  # noqa: E402


@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    """A 2-layer hf teacher (hidden 32) and prose of its own words."""
    root = tmp_path_factory.mktemp("autodistil")
    tdir, prose = write_text_setup(root, paragraphs=40)
    return {"teacher": f"hf:{tdir}", "data": f"text:{prose}", "root": root}


def _search(setup, out, **kw):
    from searchkd import api

    opts = dict(space="bert-tiny", strategy="autodistil", budget=4, teacher=setup["teacher"], data=setup["data"],
                batch_size=4, supernet_steps=2, device="cpu", out=str(out), progress=False)
    opts.update(kw)
    return api.search(**opts)


@pytest.fixture(scope="module")
def searched(text_setup):
    return _search(text_setup, text_setup["root"] / "run")


def test_search_trains_a_superlm_scores_subnets_and_exports_the_best(text_setup, searched, one_thread):
    import torch

    from searchkd.hf.load import load_exported
    from searchkd.spaces import get_space

    out = text_setup["root"] / "run"
    r = searched
    assert r.config["proxy"] == "superlm" and r.trials == 4
    trials = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    assert r.best.arch == max(trials, key=lambda t: t["scores"]["superlm"])["arch"]
    assert all(t["scores"]["superlm"] < 0 for t in trials)  # a relation loss, negated
    saved = json.loads((out / "supernet" / "config.json").read_text())
    assert saved["step"] == 2 and saved["space"] == "bert-tiny"
    assert json.loads((out / "result.json").read_text())["student"] == str(out / "student")
    model = load_exported(out / "student")
    ids = torch.tensor([[2, 40, 41, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert hidden.shape == (1, 5, get_space("bert-tiny").arch(r.best.arch).hidden)


def test_reused_supernet_gives_the_same_scores_and_is_not_retrained(text_setup, searched, tmp_path, one_thread):
    first = text_setup["root"] / "run"
    r = _search(text_setup, tmp_path / "again", supernet=str(first / "supernet"), supernet_steps=None)
    assert not (tmp_path / "again" / "supernet").exists()
    a = {json.loads(x)["arch"]: json.loads(x)["scores"] for x in (first / "trials.jsonl").read_text().splitlines()}
    b = {json.loads(x)["arch"]: json.loads(x)["scores"] for x in (tmp_path / "again" / "trials.jsonl").read_text().splitlines()}
    assert a == b and r.best.arch == searched.best.arch


def test_evolution_and_nsga2_search_the_same_score_source(text_setup, searched, tmp_path, one_thread):
    sup = str(text_setup["root"] / "run" / "supernet")
    r = _search(text_setup, tmp_path / "evo", strategy="evolution", budget=6, supernet=sup, supernet_steps=None,
                options={"population": 3, "sample_size": 2})
    assert r.trials == 6
    r2 = _search(text_setup, tmp_path / "nsga", strategy="nsga2", budget=6, supernet=sup, supernet_steps=None,
                 objectives=("superlm", "params"), options={"population": 4})
    assert r2.trials == 6 and len(r2.pareto) >= 1


def test_training_free_text_proxies(text_setup, one_thread):
    from searchkd import api

    rows = api.score_archs("bert-tiny", ["L4-H128-A7-R2.0", "L7-H224-A10-R3.5"], "diswot_relation,capacity_gap,params",
                           teacher=text_setup["teacher"], data=text_setup["data"], batch_size=4, progress=False)
    assert all(r["diswot_relation"] < 0 for r in rows)
    assert rows[0]["params"] < rows[1]["params"]
    # the teacher is far smaller than both: the smaller student is nearer the 2.5x optimum
    assert rows[0]["capacity_gap"] > rows[1]["capacity_gap"]


@pytest.mark.parametrize("kw, match", [
    ({"space": "nb201", "proxy": "superlm", "data": "embedded"}, "BERT students"),
    ({"proxy": "diswot"}, "does not score text students"),
    ({"data": "embedded"}, "need text data"),
    ({"supernet": "/nonexistent/sl"}, "no SuperLM checkpoint"),
    ({"supernet_steps": 0}, "positive integer"),
])
def test_bad_input_is_refused_before_anything_is_written(text_setup, tmp_path, kw, match):
    with pytest.raises(SearchKDError, match=match):
        _search(text_setup, tmp_path / "bad", **kw)
    assert not (tmp_path / "bad").exists()


def test_a_supernet_of_another_sub_space_is_refused(text_setup, searched, tmp_path):
    with pytest.raises(SearchKDError, match="bert-tiny, not bert-small"):
        _search(text_setup, tmp_path / "other", space="bert-small", supernet=str(text_setup["root"] / "run" / "supernet"),
                supernet_steps=None)


def test_a_supernet_trained_on_another_split_is_refused(text_setup, searched, tmp_path):
    # seed 1 splits the text differently: the SuperLM's training rows would be scored
    with pytest.raises(SearchKDError, match="another train/held-out split"):
        _search(text_setup, tmp_path / "seed1", seed=1, supernet=str(text_setup["root"] / "run" / "supernet"),
                supernet_steps=None)


def test_text_proxies_are_checked_and_a_text_search_needs_an_out_dir(text_setup):
    from searchkd import api

    with pytest.raises(SearchKDError, match="does not score text students"):
        api.score_archs("bert-tiny", ["L4-H128-A7-R2.0"], "synflow", data=text_setup["data"])
    with pytest.raises(SearchKDError, match="superlm proxy needs out="):
        api.search(space="bert-tiny", strategy="autodistil", budget=2, data=text_setup["data"])


def test_teachers_sized_for_the_space(text_setup, tmp_path):
    from dataclasses import replace

    from searchkd.cli import main
    from searchkd.evaluate.text import _teacher
    from searchkd.spaces import get_space
    from searchkd.teachers.text import teacher_size_warning

    # bert-small / bert-base have no default teacher offline: one line, nothing written
    for space in ("bert-small", "bert-base"):
        with pytest.raises(SearchKDError, match=f"{space} has no default teacher offline .*--teacher hf:DIR"):
            _search(text_setup, tmp_path / space, space=space, teacher=None)
        assert not (tmp_path / space).exists()
    # a teacher smaller than the space's largest student (10.6 M for bert-tiny) is a warning naming the law
    with pytest.warns(UserWarning, match=r"smaller than bert-tiny's largest student L7-H224-A10-R3.5 \(10.6 M\).*"
                                         "capacity-gap law"):
        teacher = _teacher(text_setup["teacher"], None, "cpu", get_space("bert-tiny"))
    minilm = replace(teacher.info, name="minilm-l6", params=22_713_216)
    assert teacher_size_warning(get_space("bert-tiny"), minilm) is None
    assert "27.9 M" in teacher_size_warning(get_space("bert-small"), minilm)
    assert main(["search", "--space", "bert-base", "--strategy", "autodistil", "--data", text_setup["data"],
                 "--out", str(tmp_path / "cli"), "--quiet"]) == 2


@pytest.fixture(scope="module")
def cut_setup(tmp_path_factory):
    """A 2-layer teacher wide enough to cut bert-tiny's largest student from (hidden 240 = 12
    heads × 20, FFN 800), and a search whose SuperLM starts from it (the default --init)."""
    root = tmp_path_factory.mktemp("autodistil-cut")
    tdir, prose = write_text_setup(root, paragraphs=40, shape=(2, 240, 12, 800))
    setup = {"teacher": f"hf:{tdir}", "data": f"text:{prose}", "root": root}
    with pytest.warns(UserWarning, match="capacity-gap"):  # 2 layers of 240: smaller than L7-H224's 10.6 M
        result = _search(setup, root / "run", budget=6, supernet_steps=3, supernet_lr=1e-3)
    return setup, result


def test_superlm_starts_from_the_teacher_trains_and_scores_held_out_rows(cut_setup, one_thread):
    import torch

    from searchkd.evaluate.text import _qkv, _teacher, text_split
    from searchkd.spaces import get_space
    from searchkd.supernets import SuperLM
    from searchkd.supernets.superlm_init import resolve_init

    setup, r = cut_setup
    out = setup["root"] / "run"
    saved = json.loads((out / "supernet" / "config.json").read_text())
    assert saved["config"]["init"] == "teacher" and saved["config"]["lr"] == 1e-3 and saved["step"] == 3
    teacher = _teacher(setup["teacher"], None, "cpu")
    train, held = text_split(setup["data"], teacher, 0)
    lm = SuperLM.load(out / "supernet", _qkv(teacher), teacher=teacher.info.id, device="cpu")
    label, pretrained, note = resolve_init(None, teacher, get_space("bert-tiny"))
    start = SuperLM("bert-tiny", _qkv(teacher), teacher=teacher.info.id, device="cpu", pretrained=pretrained)
    assert label == "teacher" and note is None and start.init_id == saved["init"]
    # trained: the weights moved from the teacher's cut
    moved = [k for k, v in start.net.state_dict().items() if not torch.equal(v, lm.net.state_dict()[k])]
    assert len(moved) > 10
    # scored on the held-out rows (and not on the train rows) inside the trained SuperLM
    trials = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    archs = [t["arch"] for t in trials]
    on_held = lm.score_many(archs, *held.tensors(range(len(held))))
    on_train = lm.score_many(archs, *train.tensors(range(len(train))))
    assert [t["scores"]["superlm"] for t in trials] == pytest.approx([-x for x in on_held], rel=1e-5)
    assert [-x for x in on_train] != pytest.approx([t["scores"]["superlm"] for t in trials], rel=1e-3)
    assert r.best.arch == max(trials, key=lambda t: t["scores"]["superlm"])["arch"]


def test_init_flags(cut_setup, tmp_path):
    from searchkd.cli import main

    setup, _ = cut_setup
    with pytest.raises(SearchKDError, match="--init must be teacher, random or hf:DIR"):
        _search(setup, tmp_path / "a", supernet_init="bert")
    with pytest.raises(SearchKDError, match="--supernet-lr must be"):
        _search(setup, tmp_path / "b", supernet_lr=-1.0)
    # --init random through the CLI: BERT's random init, recorded
    assert main(["search", "--space", "bert-tiny", "--strategy", "autodistil", "--teacher", setup["teacher"],
                 "--data", setup["data"], "--init", "random", "--supernet-steps", "1", "--budget", "2",
                 "--batch-size", "4", "--device", "cpu", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    saved = json.loads((tmp_path / "c" / "supernet" / "config.json").read_text())
    assert saved["config"]["init"] == "random" and saved["init"] is None
