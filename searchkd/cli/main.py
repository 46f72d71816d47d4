"""The ``searchkd`` command line: argument parsing only; every command calls :mod:`searchkd.api`.

Exit codes: 0 ok; 2 bad input (one line ``searchkd: error: …`` on stderr, no traceback);
1 an unexpected internal error. Nothing heavy (torch, ray) is imported before a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from searchkd._version import __version__
from searchkd.errors import SearchKDError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, raised so main() reports it
        raise SearchKDError(f"{self.prog.split(' ', 1)[-1] if ' ' in self.prog else 'usage'}: {message}")


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_seed.__name__ = "non-negative integer"  # argparse names the type in its one-line error


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive.__name__ = "positive integer"


def _finite(text: str) -> float:
    import math

    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


_finite.__name__ = "finite number"


def _finite_floats(sub: Any) -> None:
    """Every ``type=float`` option of every command parses with :func:`_finite`: no flag takes
    NaN or ±inf (a NaN weight trained to chance and still reported a best cell)."""
    for parser in sub.choices.values():
        for action in parser._actions:
            if action.type is float:
                action.type = _finite
            elif isinstance(action, argparse._SubParsersAction):  # bench correlation
                _finite_floats(action)


def threads_for(args: argparse.Namespace) -> int:
    """The torch thread count of a command: ``--threads``, else ``$OMP_NUM_THREADS``, else 1."""
    import os

    if getattr(args, "threads", None):
        return int(args.threads)
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else 1


class _Threads:
    """Sets torch's intra-op threads for one command and puts the caller's back after it (the
    CLI may run inside another program, e.g. the tests); before torch is imported it is the
    environment torch reads at import."""

    def __init__(self, n: int) -> None:
        self.n, self.before, self.env = n, None, None

    def __enter__(self) -> None:
        import os

        self.env = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(self.n)
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            self.before = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        import os

        if self.env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = self.env
        if self.before is not None:
            sys.modules["torch"].set_num_threads(self.before)


def _common(p: argparse.ArgumentParser, *, seed_device: bool = True) -> None:
    """The options of every torch command; ``seed_device=False`` (sweep): a sweep's seeds and
    device are its TOML's, so ``--seed``/``--device`` are refused with a one-line hint."""
    if seed_device:
        p.add_argument("--seed", type=_seed, default=0, help="random seed, a non-negative integer (default 0)")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default auto)")
    else:
        p.add_argument("--seed", default=None, help=argparse.SUPPRESS)
        p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bar, no Ray or Tune banners")
    p.add_argument("--debug", action="store_true", help="show the tracebacks of failures (internal errors, Ray trials)")
    p.add_argument("--threads", type=_positive, default=None,
                   help="torch threads of this process (default: $OMP_NUM_THREADS, else 1; a Ray trial uses its "
                   "--cpus-per-trial). Scoring is many small forward passes: on a busy machine torch's all-cores "
                   "default was 17-45x slower than one thread")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="searchkd", description="Find the student architecture that distils best from a teacher.")
    parser.add_argument("--version", action="version", version=f"searchkd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list spaces, proxies, strategies or teachers")
    p.add_argument("what", choices=["spaces", "proxies", "strategies", "teachers"])
    p.set_defaults(run=_cmd_list)

    from searchkd.cli import acm as cli_acm, score as cli_score, search as cli_search

    cli_score.register(sub, _common)
    cli_search.register(sub, _common)
    cli_acm.register(sub, _common)
    _finite_floats(sub)
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    from searchkd import api

    rows = api.describe(args.what)
    width = max((len(n) for n, _ in rows), default=0)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    debug = False
    try:
        args = parser.parse_args(argv)
        debug = bool(getattr(args, "debug", False))
        if getattr(args, "run", None) is None:
            parser.print_help()
            return 2
        from searchkd.cli.rules import check_flags_apply

        check_flags_apply(parser, args)  # a flag this command would ignore: one line, not silence
        if not hasattr(args, "threads"):  # list: no torch
            return int(args.run(args) or 0)
        with _Threads(threads_for(args)):
            return int(args.run(args) or 0)
    except SearchKDError as e:
        print(f"searchkd: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("searchkd: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the machine's refusal (permissions, a full or read-only disk): the user's to fix
        if debug:
            raise
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"searchkd: error: cannot use{where}: {e.strerror or _one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: one line, the traceback with --debug
        if debug:
            raise
        from searchkd.errors import first_line

        print(f"searchkd: error: internal error ({first_line(e)}); --debug shows the traceback", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
