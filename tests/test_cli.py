from __future__ import annotations

import subprocess
import sys

import pytest

from searchkd.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searchkd.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_and_version_do_not_import_torch():
    code = "import sys; from searchkd.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("False")
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("searchkd ")


@pytest.mark.parametrize("what, expected", [("spaces", "nb201"), ("teachers", "resnet56")])
def test_list(capsys, what, expected):
    assert main(["list", what]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["list", "frobs"], "invalid choice"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, fragment):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: ") and fragment in err and err.count("\n") == 1


def test_bad_input_from_a_real_process_has_no_traceback():
    p = run("list", "frobs")
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1
