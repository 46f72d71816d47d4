"""The command line: argument parsing only, one module per command family; every command calls
:mod:`searchkd.api` (or the runner beneath it).

``main.py`` holds the top parser and the error handling; ``score.py`` (``score``, ``bench``),
``search.py`` (``search``, ``distill``, ``sweep``) and ``acm.py`` add their sub-commands;
``rules.py`` says which flags go together and ``common.py`` holds what they share.
"""

from __future__ import annotations

from searchkd.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
