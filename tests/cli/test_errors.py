"""The errors that used to be tracebacks: one line on stderr, exit 2 (1 for a bug), nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from searchkd.cli import main

SEARCH = ["search", "--space", "resnet_cifar", "--proxy", "params", "--strategy", "random", "--budget", "2", "--quiet"]
SCORE = ["score", "--space", "resnet_cifar", "--proxy", "params", "--arch", "1-1-1", "--quiet"]


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, ds, fs in os.walk(root) for f in fs + ds)


def _one_line(capsys, fragment, code, rc):
    err = capsys.readouterr().err
    assert rc == code and err.startswith("searchkd: error: ") and err.count("\n") == 1 and fragment in err, err


@pytest.mark.parametrize("command, out, fragment", [
    (SEARCH, "FILE/out", "is a file, not a directory"),
    (SCORE, "FILE/out.csv", "is a file, not a directory"),
    (SEARCH, "/proc/searchkd-out", "cannot write under /proc"),
    (SCORE, "/proc/x.csv", "cannot write under /proc"),
    (SEARCH, "RO/out", "cannot write in"),
    (SCORE, "RO/out.csv", "cannot write in"),
    (["bench", "correlation", "--space", "nb201", "--proxy", "params", "--ground-truth", "GT", "--column", "acc"],
     "RO/c.json", "cannot write in"),
])
def test_an_out_that_cannot_be_written_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, command, out,
                                                                   fragment):
    (tmp_path / "FILE").write_text("a file")
    ro = tmp_path / "RO"
    ro.mkdir()
    ro.chmod(0o555)
    gt = tmp_path / "gt.csv"
    gt.write_text("arch,acc\n")
    if out.startswith("RO") and os.access(ro, os.W_OK):
        # root ignores the mode bits: make the write probe in RO fail as it does for any other user
        import builtins

        import searchkd.io as checks  # where check_out_writable lives

        def deny(path, *a, **k):
            if str(path).startswith(str(ro)):
                raise PermissionError(13, "Permission denied", str(path))
            return builtins.open(path, *a, **k)

        monkeypatch.setattr(checks, "open", deny, raising=False)
    before = _tree(tmp_path)
    out = out.replace("FILE", str(tmp_path / "FILE")).replace("RO", str(ro))
    argv = [str(gt) if a == "GT" else a for a in command]
    _one_line(capsys, fragment, 2, main([*argv, "--out", out]))
    assert _tree(tmp_path) == before


def test_a_non_ascii_digit_is_a_malformed_arch(capsys):
    _one_line(capsys, "malformed arch '²-1-1'", 2, main(["score", "--space", "resnet_cifar", "--proxy", "params",
                                                          "--arch", "²-1-1"]))


def test_an_internal_error_is_one_line_exit_1_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    import searchkd.api

    def broken(*a, **k):
        raise ZeroDivisionError("a bug\nsecond line")

    monkeypatch.setattr(searchkd.api, "search", broken)
    _one_line(capsys, "internal error (ZeroDivisionError: a bug); --debug shows the traceback", 1,
              main([*SEARCH, "--out", str(tmp_path / "o")]))
    with pytest.raises(ZeroDivisionError):
        main([*SEARCH, "--out", str(tmp_path / "o"), "--debug"])


@pytest.mark.parametrize("bad", ['[search]\nbudget = "many"\n', 'search = 3\n', '[search]\nseed = -1\n',
                                 '[search]\nbatch_size = 1.5\n'])
def test_a_sweep_toml_with_a_wrong_type_is_one_line(tmp_path, capsys, bad):
    toml = tmp_path / "s.toml"
    toml.write_text(f'out = "{tmp_path / "sweep"}"\n' + bad)
    rc = main(["sweep", str(toml)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("searchkd: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "sweep").exists()


def test_ray_address_in_the_environment_that_is_down_is_one_line(tmp_path):
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "searchkd.cli", *SEARCH, "--runner", "ray", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "127.0.0.1:1' (from RAY_ADDRESS)" in p.stderr and "unset RAY_ADDRESS" in p.stderr
    assert not (tmp_path / "o").exists()


def test_threads_apply_to_one_command_and_are_put_back(tmp_path, capsys, monkeypatch):
    import torch

    import searchkd.api

    seen = []
    real = searchkd.api.score_archs

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    monkeypatch.setattr(searchkd.api, "score_archs", spy)
    before = torch.get_num_threads()
    assert main([*SCORE, "--threads", "1"]) == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert main(SCORE) == 0
    assert seen == [1, 2] and torch.get_num_threads() == before
    _one_line(capsys, "--threads", 2, main([*SCORE, "--threads", "0"]))
