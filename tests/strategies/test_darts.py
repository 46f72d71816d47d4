"""darts / sd-darts: the voting teacher, one epoch, resume (in process and after SIGKILL), bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from searchkd.cli import main  # noqa: E402
from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.orchestrate import run_search  # noqa: E402
from searchkd.spaces.nb201 import parse_cell  # noqa: E402
from searchkd.strategies.sd_darts import vote  # noqa: E402

from _darts_tiny import TINY, TINY_FLAGS, assert_step_matches, hand_step, make_loop  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def _probs(z, t):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def test_soft_vote_is_the_mean_of_the_softened_probabilities():
    teachers = [[[2.0, 0.0, -1.0]], [[0.0, 1.0, 0.0]], [[1.0, 1.0, 3.0]]]
    t = 2.0
    p = [_probs(z[0], t) for z in teachers]
    want = [sum(col) / 3 for col in zip(*p)]
    got = vote([torch.tensor(z) for z in teachers], t, "soft").exp()[0].tolist()
    assert got == pytest.approx(want, abs=1e-6)


def test_hard_vote_averages_the_teachers_of_the_majority_class():
    # row 0: teachers 0 and 1 put class 0 first, teacher 2 class 2 → majority 0, mean of teachers 0, 1
    # row 1: two teachers, one vote each (a tie) → the class with the larger mean probability
    t = 1.0
    row0 = [[3.0, 1.0, 0.0], [2.0, 0.0, 1.5], [0.0, 0.0, 4.0]]
    got = vote([torch.tensor([z]) for z in row0], t, "hard").exp()[0].tolist()
    p = [_probs(z, t) for z in row0[:2]]
    assert got == pytest.approx([(a + b) / 2 for a, b in zip(*p)], abs=1e-6)

    row1 = [[5.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # class 0 wins the tie: mean p0 > mean p1
    got = vote([torch.tensor([z]) for z in row1], t, "hard").exp()[0].tolist()
    assert got == pytest.approx(_probs(row1[0], t), abs=1e-6)
    one = vote([torch.tensor([[1.0, 2.0]])], 2.0, "hard").exp()[0].tolist()  # K=1: the teacher itself
    assert one == pytest.approx(_probs([1.0, 2.0], 2.0), abs=1e-6)


def test_one_epoch_on_a_tiny_supernet_changes_alpha(tmp_path):
    r = run_search({**TINY, "strategy": "sd-darts", "budget": 1}, tmp_path / "s")
    alphas = json.loads((tmp_path / "s" / "alphas.json").read_text())
    a0, a1 = alphas["epochs"][0]["alpha"], alphas["epochs"][1]["alpha"]
    assert len(alphas["epochs"]) == 2 and a0 != a1
    assert parse_cell(r.best.arch) and r.trials == 1
    assert (tmp_path / "s" / "alphas.png").stat().st_size > 0
    rec = json.loads((tmp_path / "s" / "trials.jsonl").read_text().splitlines()[0])
    assert rec["arch"] == r.best.arch and set(rec["scores"]) >= {"derived_acc", "supernet_acc"}
    assert len(rec["alpha_softmax"]) == 6 and math.isclose(sum(rec["alpha_softmax"][0]), 1.0, rel_tol=1e-5)
    # α moves by the α batch's gradient, downhill, after the w step: one step against a hand computation
    loop = make_loop(tmp_path / "h")
    xv, yv, xt, yt = next(loop.batches(0))
    want = hand_step(loop, xv, yv, xt, yt)
    loop.step(xv, yv, xt, yt)
    assert_step_matches(loop, want)


def test_teacher_guided_search_runs(tmp_path):
    r = run_search({**TINY, "strategy": "darts", "budget": 1, "teacher": "resnet_cifar:1-1-1",
                    "options": {**TINY["options"], "train_teacher": 1}}, tmp_path / "t")
    plain = run_search({**TINY, "strategy": "darts", "budget": 1}, tmp_path / "p")
    a = json.loads((tmp_path / "t" / "alphas.json").read_text())["epochs"][1]["alpha"]
    b = json.loads((tmp_path / "p" / "alphas.json").read_text())["epochs"][1]["alpha"]
    assert a != b and r.config["teacher"] == "resnet_cifar:1-1-1" and plain.config["teacher"] is None
    # both losses gain + kd_weight·T²·KL(teacher ‖ supernet): one step against a hand computation
    loop = make_loop(tmp_path / "h", teacher="resnet_cifar:1-1-1", train_teacher=1)
    xv, yv, xt, yt = next(loop.batches(0))
    want = hand_step(loop, xv, yv, xt, yt, teacher=loop.teacher)
    loop.step(xv, yv, xt, yt)
    assert_step_matches(loop, want)


def _final(out: Path) -> tuple[list, list]:
    lines = (out / "trials.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines], json.loads((out / "alphas.json").read_text())["epochs"]


def _strip(recs):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in recs]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg = {**TINY, "strategy": "sd-darts", "budget": 3}
    run_search(cfg, tmp_path / "a")
    import searchkd.trials as tlog
    from searchkd.orchestrate.driver import prepare

    class Stop(Exception):
        pass

    def stop(epoch, loop):
        if epoch == 2:
            raise Stop

    plan = prepare(cfg)
    (tmp_path / "b").mkdir()
    tlog.write_json(tmp_path / "b" / "config.json", {"config": plan.config.to_dict()})
    with pytest.raises(Stop):
        plan.strategy_cls.run(plan.config, str(tmp_path / "b"), callback=stop)
    with open(tmp_path / "b" / "trials.jsonl", "a") as f:  # a torn record, as a kill mid-write leaves
        f.write('{"i": 2, "arch": "|no')
    r = run_search(cfg, tmp_path / "b", resume=True)
    (ra, aa), (rb, ab) = _final(tmp_path / "a"), _final(tmp_path / "b")
    assert _strip(ra) == _strip(rb) and aa == ab and r.best.arch == ra[-1]["arch"]


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path):
    flags = ["search", "--space", "nb201", "--strategy", "sd-darts", "--budget", "3", *TINY_FLAGS]
    assert main([*flags, "--out", str(tmp_path / "a")]) == 0
    out = tmp_path / "b"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "searchkd.cli", *flags, "--out", str(out)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.time() - t0 < 60:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len((out / "trials.jsonl").read_text().splitlines()) if (out / "trials.jsonl").exists() else 0
    assert done < 3, "the run finished before it could be killed"
    assert main([*flags, "--out", str(out), "--resume"]) == 0
    (ra, aa), (rb, ab) = _final(tmp_path / "a"), _final(out)
    assert _strip(ra) == _strip(rb) and aa == ab


@pytest.mark.parametrize("extra, message", [
    (["--budget", "0"], "budget must be a positive"),
    (["--space", "resnet_cifar"], "needs a space with a supernet (nb201)"),
    (["--images", "40"], "fewer than one batch"),
    (["--sd-voting", "loud"], "sd_voting must be soft or hard"),
    (["--proxy", "synflow"], "--proxy is not used"),
    (["--teacher", "resnet_cifar:1-1-1"], "has no trained weights: give --teacher-weights PATH or --train-teacher"),
    (["--train-teacher", "2"], "give --teacher"),
    (["--train-teacher", "0", "--teacher", "resnet20"], "--train-teacher must be a positive number of epochs"),
    (["--order", "3"], "order must be 1 or 2"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, extra, message):
    argv = ["search", "--space", "nb201", "--strategy", "sd-darts", "--budget", "1", *TINY_FLAGS, "--out", str(tmp_path / "x")]
    for i in range(0, len(extra), 2):  # later flags override
        argv += extra[i:i + 2]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x").exists()


def test_resume_with_another_config_changes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["search", "--space", "nb201", "--strategy", "darts", "--budget", "1", *TINY_FLAGS, "--out", str(out)]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for change in (["--budget", "2"], ["--seed", "1"]):
        assert main([*argv, "--resume", *change]) == 2
        assert "cannot resume" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_checkpoint_of_another_search_is_refused(tmp_path):
    cfg = {**TINY, "strategy": "darts", "budget": 1}
    run_search(cfg, tmp_path / "a")
    run_search({**cfg, "seed": 1}, tmp_path / "b")
    (tmp_path / "b" / "checkpoint.pt").write_bytes((tmp_path / "a" / "checkpoint.pt").read_bytes())
    with pytest.raises(SearchKDError, match="another config"):
        run_search({**cfg, "seed": 1}, tmp_path / "b", resume=True)


def test_darts_refuses_sd_options():
    with pytest.raises(SearchKDError, match="sd-darts"):
        run_search({**TINY, "strategy": "darts", "budget": 1, "options": {**TINY["options"], "sd_weight": 1.0}}, "/nonexistent/x")


@pytest.mark.parametrize("interval", [0, 1])
def test_sd_term_changes_the_search_with_epoch_teachers(tmp_path, interval):
    base = {**TINY, "budget": 3}
    run_search({**base, "strategy": "darts"}, tmp_path / "d")
    from searchkd.orchestrate.driver import prepare

    plan = prepare({**base, "strategy": "sd-darts", "options": {**TINY["options"], "sd_interval": interval}})
    (tmp_path / "s").mkdir()
    ends, checked = [], []

    def check(epoch, loop):  # the K=2 teachers are always the two newest supernets
        ends.append({k: v.clone() for k, v in loop.model.state_dict().items()})
        snaps = list(loop.snapshots)
        assert len(snaps) == 2 if (interval or epoch >= 2) else len(snaps) == 1
        assert all(torch.equal(snaps[-1][k], v) for k, v in ends[-1].items()), "the newest snapshot is stale"
        if interval == 0 and epoch >= 2:  # one per epoch: the previous epoch's end
            assert all(torch.equal(snaps[-2][k], v) for k, v in ends[-2].items())
        if interval and epoch >= 2:  # one per step: not the previous epoch's end any more
            assert not all(torch.equal(snaps[-2][k], v) for k, v in ends[-2].items())
        checked.append(epoch)

    plan.strategy_cls.run(plan.config, str(tmp_path / "s"), callback=check)
    assert checked == [1, 2, 3]
    (rd, ad), (rs, as_) = _final(tmp_path / "d"), _final(tmp_path / "s")
    if interval == 0:
        assert ad[1] == as_[1]  # epoch 1: no snapshot yet, so the same as DARTS
    assert ad[2] != as_[2] and rd[1]["scores"] != rs[1]["scores"]


@pytest.mark.ray
def test_ray_runs_the_search_as_one_tune_trial_with_the_local_result(tmp_path):
    pytest.importorskip("ray")
    import ray

    cfg = {**TINY, "strategy": "sd-darts", "budget": 2}
    local = run_search(cfg, tmp_path / "local")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_search(cfg, tmp_path / "ray", runner="ray", cpus_per_trial=1)
        bad = {**cfg, "seed": 5}  # a foreign checkpoint, found inside the trial: one line back
        import searchkd.trials as tlog
        from searchkd.orchestrate.driver import prepare

        (tmp_path / "bad").mkdir()
        tlog.write_json(tmp_path / "bad" / "config.json", {"config": prepare(bad).config.to_dict()})
        (tmp_path / "bad" / "checkpoint.pt").write_bytes((tmp_path / "local" / "checkpoint.pt").read_bytes())
        with pytest.raises(SearchKDError, match="another config"):
            run_search(bad, tmp_path / "bad", runner="ray", resume=True)
    finally:
        ray.shutdown()
    assert remote.best.arch == local.best.arch
    assert _strip(_final(tmp_path / "ray")[0]) == _strip(_final(tmp_path / "local")[0])
