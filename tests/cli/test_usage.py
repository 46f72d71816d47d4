"""What the README says a command takes and does, checked against the parser (issue 14, item 8)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from searchkd.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_command(name: str) -> list[str]:
    """The ``searchkd NAME …`` example of the README's command table, as argv."""
    for line in README.read_text().splitlines():
        m = re.match(rf"\| `searchkd ({name} [^`]*)` \|", line)
        if m:
            return shlex.split(m.group(1))
    raise AssertionError(f"no `searchkd {name}` row in the README's command table")


def test_the_readme_distill_example_names_a_teacher_source(monkeypatch, capsys):
    from searchkd import api

    got = {}
    monkeypatch.setattr(api, "distill", lambda result, **kw: got.update(kw, result=result) or {})
    argv = _readme_command("distill")
    assert main(argv + ["--quiet"]) == 0
    # without one of the two, distill refuses an untrained teacher (tests/distill/test_verify.py)
    assert got["train_teacher"] or got["teacher_weights"]
    assert got["result"] == "runs/x/result.json" and got["top"] == 4 and got["epochs"] == 5


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--device", "cpu"]])
def test_sweep_refuses_seed_and_device_in_one_line(tmp_path, capsys, flag):
    assert main(["sweep", str(tmp_path / "none.toml"), *flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: sweep: --") and "TOML" in err and err.count("\n") == 1


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--device", "cpu"], ["--quiet"]])
def test_list_takes_none_of_the_common_options(capsys, flag):
    assert main(["list", "spaces", *flag]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_readme_says_which_commands_take_seed_and_device():
    import argparse

    from searchkd.cli import build_parser

    text = " ".join(README.read_text().split())
    m = re.search(r"((?:`\w+`,? )+and `\w+`) take `--seed` \(default 0\) and `--device", text)
    assert m, "the README's sentence on --seed/--device"
    said = set(re.findall(r"`(\w+)`", m.group(1)))
    def seeded(p: argparse.ArgumentParser) -> bool:  # it, or one of its subcommands (bench correlation)
        return any(("--seed" in a.option_strings and a.help != argparse.SUPPRESS)
                   or (isinstance(a, argparse._SubParsersAction) and any(map(seeded, a.choices.values())))
                   for a in p._actions)

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    takes = {name for name, p in sub.choices.items() if seeded(p)}
    assert said == takes
    assert "`sweep` refuses both" in text and ".venv/bin/searchkd" in text


def test_the_licence_is_an_spdx_string():
    """A licence table makes setuptools >= 77 print a deprecation banner on every install."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib

    meta = tomllib.loads((README.parent / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in meta["build-system"]["requires"]


def test_make_demo_says_how_to_run_the_cli():
    assert ".venv/bin/searchkd" in (README.parent / "Makefile").read_text().replace("$(BIN)", ".venv/bin")
