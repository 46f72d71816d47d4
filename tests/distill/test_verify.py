"""run_distill end to end on a few hundred embedded images, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from searchkd.data.images import load_images
from searchkd.distill import prepare_teacher, run_distill
from searchkd.distill.split import load_data, proxy_batch
from searchkd.distill.train import Images, evaluate
from searchkd.errors import SearchKDError
from searchkd.seeds import stream_seed, teacher_seed
from searchkd.spaces import get_space

SPACE = get_space("resnet_cifar")
ARCHS = {"1-2-1": 3.0, "1-1-1": 2.0, "2-1-1": 1.0}  # proxy scores written by hand


def write_result(d: Path, *, n_images: int = 300, space: str = "resnet_cifar", archs: dict | None = None,
                 teacher: str = "resnet_cifar:2-2-2", **config: object) -> Path:
    """A search result dir in the CONTRACT format, with a small npz cut from the embedded data."""
    d.mkdir(parents=True, exist_ok=True)
    ds = load_images("embedded")
    idx = ds.indices(n_images, seed=0)
    np.savez(d / "small.npz", x=ds.x[idx], y=ds.y[idx])
    archs = ARCHS if archs is None else archs
    trials = [{"i": i, "arch": a, "scores": {"diswot": s}, "params": 0.1, "flops": 1.0, "seconds": 0.1}
              for i, (a, s) in enumerate(archs.items())]
    (d / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    best = max(trials, key=lambda t: t["scores"]["diswot"])
    result = {"searchkd_version": "0.1.0",
              "config": {"space": space, "proxy": "diswot", "strategy": "random", "teacher": teacher,
                         "budget": len(trials), "seed": 0, "data": f"npz:{d / 'small.npz'}", "batch_size": 16,
                         **config},
              "best": {k: best[k] for k in ("arch", "scores", "params", "flops")}, "pareto": [],
              "trials": len(trials), "seconds": 0.3}
    (d / "result.json").write_text(json.dumps(result))
    return d / "result.json"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = write_result(tmp_path_factory.mktemp("verify"))
    report = run_distill(path, top=2, controls=0, epochs=1, train_teacher=1, baseline=True,
                         vanilla_best="2-1-1", batch_size=64, feature_losses=("sp", "ickd"), progress=False,
                         device="cpu")  # the accuracies are recomputed on the CPU below
    torch.set_num_threads(threads)
    return path, report


def _held_out(path: Path, seed: int = 0) -> Images:
    """The held-out images of a distill run on ``write_result``'s data, recomputed."""
    config = json.loads(path.read_text())["config"]
    return Images.from_set(load_data(config["data"], 0.2, seed, keep_batch=proxy_batch(config, config["data"]))[1])


def _trained(weights: Path, arch: str) -> torch.nn.Module:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net = SPACE.build(arch, num_classes=10)
    net.load_state_dict(state["model"])
    return net


def test_end_to_end_writes_a_complete_verify_json(tiny_run) -> None:
    import zlib

    path, report = tiny_run
    out = path.parent
    on_disk = json.loads((out / "verify.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert report["complete"] and (out / "verify.png").is_file() and (out / "teacher.pt").is_file()
    assert report["config"]["n_train"] == 240 and report["config"]["n_held_out"] == 60
    held = _held_out(path)
    t = report["teacher"]
    assert t["arch"] == "2-2-2" and t["source"] == "trained" and t["split_checked"]
    assert t["accuracy"] == evaluate(_trained(out / "teacher.pt", "2-2-2"), held)  # measured on the held-out images
    rows = report["students"]
    assert [(r["arch"], r["role"]) for r in rows] == [("1-2-1", "top"), ("1-1-1", "top"), ("2-1-1", "vanilla-best")]
    for r in rows:
        assert r["score"] == ARCHS[r["arch"]] and r["epochs"] == 1 and r["seconds"] > 0
        assert r["params"] == pytest.approx(SPACE.cost(r["arch"])["params"])
        for mode in ("kd", "vanilla"):
            ckpt, = (out / "distill").glob(f"*-{zlib.crc32(r['arch'].encode()):08x}/{mode}-*/last.pt")
            assert r[f"{mode}_accuracy"] == evaluate(_trained(ckpt, r["arch"]), held)
        assert r["kd_gain"] == pytest.approx(r["kd_accuracy"] - r["vanilla_accuracy"])
    v = report["verdict"]
    assert v["pick"] == "1-2-1" and v["proxy_vs_kd"]["n"] == 3
    assert {"kendall_tau", "spearman_rho"} <= set(v["proxy_vs_kd"]) and v["pick_beats_controls_mean"] is None


def test_second_call_reuses_the_teacher_and_resume_reuses_students(tiny_run) -> None:
    path, first = tiny_run
    again = run_distill(path, top=2, controls=0, epochs=1, train_teacher=1, baseline=True, vanilla_best="2-1-1",
                        batch_size=64, feature_losses=("sp", "ickd"), resume=True, progress=False)
    assert again["teacher"]["source"] == "teacher.pt (reused)"
    assert again["teacher"]["accuracy"] == first["teacher"]["accuracy"]
    assert [r["kd_accuracy"] for r in again["students"]] == [r["kd_accuracy"] for r in first["students"]]
    # with no teacher option at all, DIR/teacher.pt is used
    third = run_distill(path, top=1, controls=0, epochs=1, batch_size=64, resume=True, progress=False, plot=False)
    assert third["teacher"]["source"] == "teacher.pt"


def test_never_distils_from_an_untrained_teacher(tmp_path) -> None:
    path = write_result(tmp_path, n_images=60)
    with pytest.raises(SearchKDError, match="teacher must be trained"):
        run_distill(path, top=1, controls=0, epochs=1, progress=False)


def test_teacher_weights_must_fit(tmp_path, tiny_run) -> None:
    path = write_result(tmp_path, n_images=60)
    with pytest.raises(SearchKDError, match="not found"):
        run_distill(path, top=1, epochs=1, teacher_weights=tmp_path / "nope.pt", progress=False)
    torch.save(SPACE.build("2-2-2", num_classes=100).state_dict(), tmp_path / "c100.pt")
    with pytest.raises(SearchKDError, match="100 classes but the data has 10"):
        run_distill(path, top=1, epochs=1, teacher_weights=tmp_path / "c100.pt", progress=False)
    torch.save(SPACE.build("3-3-3", num_classes=10).state_dict(), tmp_path / "r20.pt")
    with pytest.raises(SearchKDError, match="do not fit"):
        run_distill(path, top=1, epochs=1, teacher_weights=tmp_path / "r20.pt", progress=False)
    # the teacher trained by the tiny run fits, is loaded with weights_only, and is evaluated
    report = run_distill(path, top=1, controls=1, epochs=1, batch_size=32, progress=False, plot=False,
                         teacher_weights=tiny_run[0].parent / "teacher.pt", baseline=False, device="cpu")
    assert report["teacher"]["source"] == "weights" and [r["role"] for r in report["students"]] == ["top", "control"]
    # given weights carry no record of their training images: said, not hidden
    assert not report["teacher"]["split_checked"] and any("cannot be checked" in n for n in report["notes"])
    control = report["students"][1]
    # diswot is available: the control is rescored as the search scored (its teacher, data, batch 16, seed 0)
    from searchkd.evaluate import EvalConfig, Evaluator

    expected = Evaluator(EvalConfig(space="resnet_cifar", proxies=("diswot",), teacher="resnet_cifar:2-2-2",
                                    data=f"npz:{tmp_path / 'small.npz'}", batch_size=16, seed=0, device="cpu"))
    assert control["score_source"] == "rescored" and not any("could not score" in n for n in report["notes"])
    assert control["score"] == expected([control["arch"]])[0]["scores"]["diswot"]


def test_prepare_teacher_alone_then_reused(tmp_path) -> None:
    path = write_result(tmp_path, n_images=60)
    info = prepare_teacher(path, train_teacher=1, batch_size=32)
    assert info["source"] == "trained" and info["n_train"] == 50 and (tmp_path / "teacher.pt").is_file()
    report = run_distill(path, top=1, controls=0, epochs=1, train_teacher=1, batch_size=32, progress=False, plot=False)
    assert report["teacher"]["source"] == "teacher.pt (reused)"
    assert report["teacher"]["accuracy"] == info["accuracy"]
    # the teacher draws from its own stream, never the students' seed
    assert json.loads(torch.load(tmp_path / "teacher.pt", weights_only=True)["meta"])["seed"] == teacher_seed(0)
    # the baseline is on by default, as in the CLI
    assert report["config"]["baseline"] and report["students"][0]["vanilla_accuracy"] is not None
    with pytest.raises(SearchKDError, match="not both"):
        run_distill(path, top=1, epochs=1, train_teacher=1, teacher_weights=tmp_path / "teacher.pt")


def test_a_teacher_pt_is_reused_only_on_the_split_it_was_trained_on(tmp_path) -> None:
    path = write_result(tmp_path, n_images=60)
    kw = {"batch_size": 32, "device": "cpu"}
    info = prepare_teacher(path, train_teacher=1, **kw)
    assert info["source"] == "trained"
    same = prepare_teacher(path, **kw)
    assert same["source"] == "teacher.pt" and same["accuracy"] == info["accuracy"] and same["split_checked"]
    assert prepare_teacher(path, train_teacher=1, **kw)["source"] == "teacher.pt (reused)"
    # another seed or fraction holds out images this teacher trained on: never reused
    for other in ({"seed": 1}, {"held_out": 0.3}):
        with pytest.raises(SearchKDError, match="train/held-out split .*retrain it"):
            prepare_teacher(path, **kw, **other)
        assert prepare_teacher(path, train_teacher=1, **kw, **other)["source"] == "trained"  # retrained instead
        with pytest.raises(SearchKDError, match="split"):  # teacher.pt now belongs to the other split
            prepare_teacher(path, **kw)
        prepare_teacher(path, train_teacher=1, **kw)
    # the same spec with other images (the file was replaced): another split too
    data = np.load(tmp_path / "small.npz")
    np.savez(tmp_path / "small.npz", x=data["x"][::-1], y=data["y"][::-1])
    with pytest.raises(SearchKDError, match="held_out_crc"):
        prepare_teacher(path, **kw)
    # a teacher.pt with no record of its split is not trusted
    torch.save(SPACE.build("2-2-2", num_classes=10).state_dict(), tmp_path / "teacher.pt")
    with pytest.raises(SearchKDError, match="split_seed None there"):
        prepare_teacher(path, **kw)


def test_verify_json_says_how_many_scored_images_left_the_held_out_part(tmp_path) -> None:
    path = write_result(tmp_path, n_images=300, batch_size=64, proxy_seed=5)
    ds = load_images(f"npz:{tmp_path / 'small.npz'}")
    batch = ds.indices(64, seed=5)  # what the search's proxies scored on (its batch size, its proxy seed)
    moved = int(np.isin(batch, ds.split_indices(0.2, stream_seed(0, "split"))[1]).sum())  # the plain split's
    assert moved > 0
    report = run_distill(path, top=1, controls=0, epochs=1, train_teacher=1, baseline=False, batch_size=64,
                         progress=False, plot=False, device="cpu")
    assert report["config"]["proxy_batch"] == {"batch_size": 64, "seed": 5, "moved_out_of_held_out": moved}
    assert report["config"]["n_held_out"] == 60


def test_students_draw_from_the_shared_seed_streams() -> None:
    import searchkd.seeds
    from searchkd.distill import verify

    assert verify.arch_seed is searchkd.seeds.arch_seed


def test_cli_defaults_are_the_api_defaults(monkeypatch) -> None:
    import inspect

    from searchkd import api
    from searchkd.cli import main

    got = {}
    monkeypatch.setattr(api, "distill", lambda result, **kw: got.update(kw) or {})
    assert main(["distill", "--result", "r", "--quiet"]) == 0
    defaults = {k: p.default for k, p in inspect.signature(run_distill).parameters.items()}
    assert got["baseline"] is True
    for k, v in got.items():
        if k != "progress":  # --quiet
            assert (v or None) == (defaults[k] or None), k  # "" / [] / () alike


@pytest.mark.parametrize("kw, match", [
    ({"top": 0}, "top must be"), ({"top": 4}, "only 3 distinct"), ({"epochs": 0}, "epochs must be"),
    ({"epochs": -2}, "epochs must be"), ({"controls": -1}, "controls must be"), ({"held_out": 1.0}, "held-out"),
    ({"train_teacher": 0}, "teacher epochs"), ({"kd_weight": 2.0}, "KD weight"),
    ({"feature_losses": ["fitnet"]}, "unknown feature loss"),
])
def test_bad_settings(tmp_path, kw, match) -> None:
    path = write_result(tmp_path, n_images=60)
    args = {"top": 1, "controls": 0, "epochs": 1, "train_teacher": 1, "progress": False, **kw}
    with pytest.raises(SearchKDError, match=match):
        run_distill(path, **args)


def test_bad_result_files(tmp_path) -> None:
    with pytest.raises(SearchKDError, match="not found"):
        run_distill(tmp_path / "missing" / "result.json", epochs=1)
    path = write_result(tmp_path / "a", n_images=60, space="no_such_space")
    with pytest.raises(SearchKDError, match="unknown space"):
        run_distill(path, top=1, epochs=1, train_teacher=1)
    nb201_arch = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    path = write_result(tmp_path / "b", n_images=60, archs={nb201_arch: 1.0})  # says resnet_cifar, holds nb201
    with pytest.raises(SearchKDError, match="resnet_cifar"):
        run_distill(path, top=1, epochs=1, train_teacher=1)


def test_a_teacher_near_chance_is_a_warning_on_the_terminal(tmp_path, capsys, monkeypatch) -> None:
    """Said on stderr as one line when the teacher is ready (before the students train), and
    again with verify.json's other notes at the end, not only in verify.json."""
    from searchkd.cli import main
    from searchkd.distill import train

    path = write_result(tmp_path, n_images=60)
    torch.save(SPACE.build("2-2-2", num_classes=10).state_dict(), tmp_path / "untrained.pt")
    monkeypatch.setattr(train, "evaluate", lambda model, data, batch_size=500: 9.0)  # 10 classes: chance 10 %
    assert main(["distill", "--result", str(path), "--top", "1", "--controls", "0", "--epochs", "1", "--no-baseline",
                 "--teacher-weights", str(tmp_path / "untrained.pt"), "--batch-size", "32", "--device", "cpu",
                 "--quiet"]) == 0
    out, err = capsys.readouterr()
    warning = [ln for ln in err.splitlines() if ln.startswith("searchkd: warning: ")]
    assert len(warning) == 1 and "near chance (10.0%)" in warning[0] and "(9.0%)" in warning[0]
    assert any(ln.startswith("note: the teacher's held-out accuracy (9.0%) is near chance") for ln in out.splitlines())
    assert out.splitlines()[-1] == f"wrote {tmp_path / 'verify.json'}"
    assert any("near chance" in n for n in json.loads((tmp_path / "verify.json").read_text())["notes"])
