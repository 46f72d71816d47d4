from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _text import write_text_setup  # noqa: E402

from searchkd import api  # noqa: E402
from searchkd.cli import main  # noqa: E402
from searchkd.distill.text import mapped_cosine, nn_agreement, route, run_text_distill  # noqa: E402
from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.io import append_jsonl, write_json  # noqa: E402


def test_mapped_cosine_equals_a_hand_computation():
    g = np.random.default_rng(0)
    s_tr, t_tr = g.normal(size=(12, 3)), g.normal(size=(12, 5))
    s_h, t_h = g.normal(size=(4, 3)), g.normal(size=(4, 5))
    x = np.hstack([s_tr, np.ones((12, 1))])
    w = np.linalg.solve(x.T @ x, x.T @ t_tr)  # the normal equations (x has full column rank)
    cos = []
    for s, t in zip(s_h, t_h):
        m = [sum(s[i] * w[i, j] for i in range(3)) + w[3, j] for j in range(5)]
        cos.append(sum(a * b for a, b in zip(m, t)) / math.sqrt(sum(a * a for a in m) * sum(b * b for b in t)))
    assert mapped_cosine(s_tr, t_tr, s_h, t_h) == pytest.approx(sum(cos) / 4, rel=1e-10)
    a, b = g.normal(size=(3, 5)), g.normal(size=5)  # an exact affine image is matched perfectly
    assert mapped_cosine(s_tr, s_tr @ a + b, s_h, s_h @ a + b) == pytest.approx(1.0, abs=1e-10)


def test_nn_agreement_equals_a_brute_force_loop():
    g = np.random.default_rng(1)
    s, t = g.normal(size=(9, 4)), g.normal(size=(9, 6))
    t[:5] = np.hstack([s[:5], s[:5, :2]])  # some rows agree by construction

    def nearest(x, i):
        def cos(a, b):
            return sum(p * q for p, q in zip(a, b)) / math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))
        return max((j for j in range(len(x)) if j != i), key=lambda j: cos(x[i], x[j]))

    expected = sum(nearest(s, i) == nearest(t, i) for i in range(9)) / 9
    assert nn_agreement(s, t) == pytest.approx(expected) and 0 < expected < 1
    assert nn_agreement(s, s * 3.0) == 1.0
    with pytest.raises(SearchKDError, match="3 rows"):
        nn_agreement(s[:2], t[:2])


def make_search(root, proxy_seed=None):
    """A finished tiny BERT search: a 2-layer hf teacher, prose of its own words, a SuperLM of a
    16-arch grid named bert-tiny trained 4 steps on the split of ``proxy_seed`` (else the
    search's seed 0), and the superlm score of every arch."""
    from searchkd.evaluate.text import _qkv, text_split
    from searchkd.spaces.bert import BertSpace
    from searchkd.supernets import SuperLM, SuperLMConfig
    from searchkd.teachers.text import load_text_teacher

    tdir, prose = write_text_setup(root, paragraphs=160, sentences=6)
    teacher = load_text_teacher(f"hf:{tdir}")
    out = root / "search"
    cfg = {"space": "bert-tiny", "proxy": "superlm", "strategy": "autodistil", "budget": 16, "seed": 0,
           "teacher": f"hf:{tdir}", "teacher_weights": None, "data": f"text:{root / 'prose.txt'}", "batch_size": 8,
           "objectives": ["proxy"], "max_params": None, "supernet": None, "supernet_steps": 4}
    if proxy_seed is not None:
        cfg["proxy_seed"] = proxy_seed
    train, held = text_split(cfg["data"], teacher, 0 if proxy_seed is None else proxy_seed)
    space = BertSpace(layers=(1, 2), hidden=(24, 48), heads=(2, 4), ratios=(1.0, 2.0), name="bert-tiny",
                      vocab_size=teacher.info.vocab_size, max_position=128)
    lm = SuperLM(space, _qkv(teacher), teacher=teacher.info.id, device="cpu",
                 config=SuperLMConfig(steps=4, batch_size=8, lr=3e-3, relation_heads=4, checkpoint_every=2))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the one_thread fixture, which a module fixture cannot use
    try:
        lm.train(*train.tensors(range(len(train))), out_dir=out / "supernet")
    finally:
        torch.set_num_threads(threads)
    archs = [space.decode(v) for v in np.ndindex(*space.bounds())]
    losses = lm.score_many(archs, *held.tensors(range(len(held))))
    trials = [{"i": i, "arch": a, "scores": {"superlm": -x}, **space.cost(a), "seconds": 0.0}
              for i, (a, x) in enumerate(zip(archs, losses))]
    append_jsonl(out / "trials.jsonl", trials)
    best = max(trials, key=lambda t: t["scores"]["superlm"])
    write_json(out / "result.json", {"searchkd_version": "test", "config": cfg, "best": best, "pareto": [best],
                                     "trials": len(trials), "seconds": 0.0})
    return out, trials, len(held)


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory):
    return make_search(tmp_path_factory.mktemp("text-search"))


def test_distill_scores_only_rows_the_superlm_never_trained_on(tmp_path, monkeypatch):
    """A search with proxy_seed 5 ≠ seed 0 split its text with 5: the students must be measured
    on that split's held-out rows, none of which the SuperLM trained on."""
    from searchkd.supernets import SuperLM

    out, _, n_held = make_search(tmp_path, proxy_seed=5)
    from searchkd.evaluate.text import _teacher, text_split

    cfg = json.loads((out / "result.json").read_text())["config"]
    train, _ = text_split(cfg["data"], _teacher(cfg["teacher"], None, "cpu"), 5)
    trained = {tuple(r) for r in train.input_ids.tolist()}
    scored = []
    real = SuperLM.score_many

    def spy(self, archs, ids, mask, batch_size=None):
        scored.extend(tuple(r) for r in ids.tolist())
        return real(self, archs, ids, mask, batch_size)

    monkeypatch.setattr(SuperLM, "score_many", spy)
    rep = run_text_distill(out / "result.json", top=1, controls=0, steps=1, device="cpu", plot=False)
    assert scored and not [r for r in scored if r in trained]
    assert rep["config"]["split_seed"] == 5 and rep["config"]["n_held_out"] == n_held

    # a result whose split is not the SuperLM's (here: proxy_seed dropped) is refused, not verified on leaked rows
    res = json.loads((out / "result.json").read_text())
    del res["config"]["proxy_seed"]
    (out / "result.json").write_text(json.dumps(res))
    with pytest.raises(SearchKDError, match="trained on other rows"):
        run_text_distill(out / "result.json", top=1, controls=0, steps=1, device="cpu", plot=False)


def test_run_text_distill_end_to_end_and_resume(search_dir, capsys):
    out, trials, n_held = search_dir
    rep = run_text_distill(out / "result.json", top=2, controls=2, steps=3, device="cpu")
    saved = json.loads((out / "verify.json").read_text())
    assert saved == json.loads(json.dumps(rep)) and saved["complete"] and (out / "verify.png").is_file()
    assert saved["config"]["n_held_out"] == n_held >= 3 and saved["config"]["steps"] == 3
    rows = saved["students"]
    ranked = sorted(trials, key=lambda t: -t["scores"]["superlm"])
    assert [r["arch"] for r in rows[:2]] == [t["arch"] for t in ranked[:2]]
    assert [r["role"] for r in rows] == ["top", "top", "control", "control"] and len({r["arch"] for r in rows}) == 4
    lo, hi = saved["config"]["control_params"]
    assert lo == pytest.approx(0.9 * min(r["params"] for r in rows[:2]))
    assert all(lo <= r["params"] <= hi for r in rows[2:])
    for r in rows:
        assert set(r) >= {"arch", "role", "score", "params", "held_out_loss_before", "held_out_loss_after",
                          "embedding_cosine", "nn_agreement", "input_cosine", "input_nn_agreement", "steps_run"}
        assert r["steps_run"] == 3 and -1 <= r["embedding_cosine"] <= 1 and 0 <= r["nn_agreement"] <= 1
        # inherited weights start where the SuperLM left the arch
        assert r["held_out_loss_before"] == pytest.approx(-r["score"], rel=1e-5)
        assert r["held_out_loss_after"] != r["held_out_loss_before"]
    for r in rows[:2]:
        assert r["score"] == pytest.approx(r["search_score"], rel=1e-6)
    v = saved["verdict"]
    assert v["superlm_vs_standalone"]["n"] == 4 and v["pick"] == rows[0]["arch"]
    assert isinstance(v["pick_beats_controls_mean"], bool)

    # the CLI resumes the finished students: nothing more is trained, the numbers stay
    assert main(["distill", "--result", str(out / "result.json"), "--top", "2", "--controls", "2", "--steps", "3",
                 "--device", "cpu", "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "superlm vs standalone loss: kendall" in printed and f"wrote {out / 'verify.json'}" in printed
    again = json.loads((out / "verify.json").read_text())["students"]
    assert [r["steps_run"] for r in again] == [0] * 4
    assert [r["held_out_loss_after"] for r in again] == [r["held_out_loss_after"] for r in rows]
    assert [r["embedding_cosine"] for r in again] == pytest.approx([r["embedding_cosine"] for r in rows], rel=1e-9)


def test_scratch_starts_elsewhere_and_bad_input(search_dir, tmp_path):
    out, _, _ = search_dir
    rep = api.distill(str(out / "result.json"), top=1, controls=0, steps=1, init="scratch", device="cpu", plot=False)
    row = rep["students"][0]
    assert row["init"] == "scratch" and row["held_out_loss_before"] != pytest.approx(-row["score"], rel=1e-3)
    with pytest.raises(SearchKDError, match="takes no epochs"):
        api.distill(str(out / "result.json"), epochs=5)
    fn, opts = route(out / "result.json", {"top": 1, "epochs": 30, "data": None, "feature_losses": "", "proxy": None})
    assert fn is run_text_distill and opts == {"top": 1}
    with pytest.raises(SearchKDError, match="init must be"):
        run_text_distill(out / "result.json", init="random")

    moved = tmp_path / "no-supernet"
    moved.mkdir()
    (moved / "result.json").write_text((out / "result.json").read_text())
    with pytest.raises(SearchKDError, match="no SuperLM checkpoint"):
        run_text_distill(moved / "result.json")
    image = tmp_path / "image"
    image.mkdir()
    write_json(image / "result.json", {"config": {"space": "resnet_cifar", "proxy": "params"}})
    with pytest.raises(SearchKDError, match="BERT spaces"):
        run_text_distill(image / "result.json")
    from searchkd.distill.verify import run_distill

    assert route(image / "result.json", {"top": 1, "steps": None})[0] is run_distill
    with pytest.raises(SearchKDError, match="--steps is for BERT"):
        route(image / "result.json", {"steps": 3})
