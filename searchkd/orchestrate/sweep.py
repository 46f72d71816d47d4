"""Sweeps: a TOML grid of whole searches, each one Ray Tune trial, plus a summary table.

A sweep config (see ``examples/sweep_nb201.toml``)::

    out = "runs/sweep_nb201"                  # one result dir per search below it
    ground_truth = "../shared/data/nb201/nb201_cifar10.csv"   # optional; or "nb201:FILE.pth"
    column = "cifar10_test_acc"               # the accuracy column of ground_truth
    # dataset = "cifar100"                    # with nb201:FILE.pth (searchkd.data.ground_truth)
    cpus_per_trial = 1                        # optional, also gpus_per_trial, max_failures (default 2)

    [search]                                  # shared settings: any SearchConfig field
    space = "nb201"
    strategy = "evolution"
    data = "npz:../shared/data/images/cifar10_test_1000.npz"

    [grid]                                    # axes: the sweep runs their product
    teacher = ["nb201-best"]
    proxy = ["synflow", "nwot"]
    budget = [100]
    seed = [0, 1, 2]

Relative paths (``out``, ``ground_truth``, data and weights paths) are taken from the
current directory, as on the command line. Every search of the grid runs with
``resume=True`` into its own directory, so running a sweep again finishes what a killed
one left and redoes nothing that was done.

**On a real cluster**: start Ray on the head node with ``ray start --head`` (it prints the
address), on every worker ``ray start --address HEAD:6379``, make searchkd (and the data
paths) available on all nodes, then on the head run
``searchkd sweep CONFIG.toml --ray-address auto`` (or ``ray://HEAD:10001`` from elsewhere
through Ray Client). Each search is one trial needing ``cpus_per_trial`` CPUs and
``gpus_per_trial`` GPUs; Tune packs as many at once as the cluster holds. ``out`` must be
on storage shared by the nodes for the result dirs to land in one place.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from searchkd.data.ground_truth import read_ground_truth
from searchkd.errors import SearchKDError
from searchkd.io import dumps, write_rows
from searchkd.orchestrate.checks import check_inputs
from searchkd.orchestrate.local import MAX_FAILURES
from searchkd.orchestrate.ray_runner import one_line_error, set_trial_threads
from searchkd.types import SearchConfig, SearchResult, check_setting

__all__ = ["run_sweep", "load_sweep", "best_objective", "SWEEP_KEYS", "MAX_FAILURES"]

SWEEP_KEYS = ("out", "ground_truth", "column", "dataset", "cpus_per_trial", "gpus_per_trial", "max_failures", "search", "grid")
#: retries of a failed Ray Tune trial: the default of a sweep's searches and of ``search --runner ray``


def load_sweep(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a sweep TOML; returns ``{"searches": {name: SearchConfig}, ...settings}``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise SearchKDError(f"no sweep config {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SearchKDError(f"cannot read sweep config {path}: {e}") from None
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise SearchKDError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(SWEEP_KEYS)})")
    for key, kind in (("search", dict), ("grid", dict), ("out", str), ("ground_truth", str), ("column", str), ("dataset", str),
                      ("cpus_per_trial", (int, float)), ("gpus_per_trial", (int, float)), ("max_failures", int)):
        if key in raw and (not isinstance(raw[key], kind) or isinstance(raw[key], bool)):
            want = "a table [" + key + "]" if kind is dict else ("a string" if kind is str else "a number")
            raise SearchKDError(f"{path}: {key} must be {want}, got {raw[key]!r}")
    base = dict(raw.get("search", {}))
    grid = dict(raw.get("grid", {}))
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise SearchKDError(f"{path}: grid.{k} must be a non-empty list")
    try:
        for k, v in [*base.items(), *((k, x) for k, xs in grid.items() for x in xs)]:
            check_setting(k, v)
    except SearchKDError as e:
        raise SearchKDError(f"{path}: {e}") from None
    if "data" in base or "data" in grid:
        from searchkd.orchestrate.local import _absolute_data

        if "data" in base:
            base["data"] = _absolute_data(base["data"])
        if "data" in grid:
            grid["data"] = [_absolute_data(d) for d in grid["data"]]
    searches: dict[str, SearchConfig] = {}
    for combo in itertools.product(*grid.values()) if grid else [()]:
        point = dict(zip(grid, combo))
        merged = {**base, **point}
        if "proxy" not in merged:  # as `searchkd search`: the strategy's own score (darts, autodistil) or the space's
            from searchkd.defaults import default_proxy

            merged["proxy"] = default_proxy(merged.get("space", "nb201"), merged.get("strategy", "evolution"))
        if "data" not in merged:  # as `searchkd search`: darts trains on training images, bert-* reads text
            from searchkd.defaults import default_data

            merged["data"] = default_data(merged.get("space", "nb201"), merged.get("strategy"))
        if "batch_size" not in merged:  # as `searchkd search`: a SuperLM trains on 16 rows a step
            from searchkd.defaults import default_batch_size

            merged["batch_size"] = default_batch_size(merged.get("space", "nb201"))
        cfg = SearchConfig.from_dict(merged)
        if cfg.teacher_weights is not None:
            from dataclasses import replace

            cfg = replace(cfg, teacher_weights=os.path.abspath(cfg.teacher_weights))
        name = "_".join(f"{k}={_slug(v)}" for k, v in point.items()) or "search"
        if name in searches:
            raise SearchKDError(f"{path}: the grid repeats a search ({name})")
        searches[name] = cfg
    column = raw.get("column")
    gt = raw.get("ground_truth")
    if gt is not None and not column:
        raise SearchKDError(f"{path}: ground_truth needs a column (e.g. column = \"cifar10_test_acc\")")
    return {"searches": searches, "grid": list(grid),
            "out": os.path.abspath(raw.get("out", "runs/sweep")),
            "ground_truth": None if gt is None else (gt if gt.startswith("nb201:") else os.path.abspath(gt)),
            "column": column, "dataset": raw.get("dataset"),
            "cpus_per_trial": float(raw.get("cpus_per_trial", 1)), "gpus_per_trial": float(raw.get("gpus_per_trial", 0)),
            "max_failures": int(raw.get("max_failures", MAX_FAILURES))}


def _slug(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(v)).strip("-")[:60] or "x"


def _sweep_trial(config: dict[str, Any], searches: dict[str, dict[str, Any]], out: str, cpus: float,
                 evaluator_factory: Callable[[SearchConfig], Any] | None, space: Any = None) -> None:
    from ray import tune

    from searchkd.orchestrate.driver import run_search

    set_trial_threads(cpus)
    name = config["name"]
    cfg = SearchConfig.from_dict(searches[name])
    ev = None if evaluator_factory is None else evaluator_factory(cfg)
    r = run_search(cfg, Path(out) / name, resume=True, progress=False, evaluator=ev, space=space)
    tune.report({"result": dumps({**r.to_dict(), "objective": best_objective(cfg, r)}), "done": 1})


def best_objective(config: SearchConfig, result: SearchResult) -> float | None:
    """The summary's ``objective``: the best's proxy score, or, with several proxies, its mean
    rank among the search's trials (``result.history``, the ranking the search ended with).
    None when there is no best, or the value is not finite (a failed proxy).
    """
    from searchkd.orchestrate.objective import Objectives

    if result.best is None:
        return None
    if len(config.proxies) == 1:
        value = result.best.scores.get(config.proxies[0])
    else:
        obj = Objectives(("proxy",), config.proxies, config.combine)
        obj.update(result.history)
        best = next((t for t in result.history if t.arch == result.best.arch), None)
        value = None if best is None else obj.proxy_value(best)
    return float(value) if value is not None and math.isfinite(float(value)) else None


def run_sweep(config_toml_path: str | os.PathLike[str], ray_address: str | None = None, *,
              evaluator_factory: Callable[[SearchConfig], Any] | None = None,
              space: Any = None, stream: Any = None, debug: bool = False, quiet: bool = False) -> list[dict[str, Any]]:
    """Run every search of a sweep config as a Ray Tune trial; print and write the summary.

    Args:
        config_toml_path: the sweep TOML (format in the module docstring).
        ray_address: an existing cluster (``auto``, ``HOST:PORT``, ``ray://…``); None starts a
            local Ray with every CPU.
        evaluator_factory: ``f(SearchConfig)`` → an evaluator factory for
            :func:`run_search` (tests); pickled to the workers.
        space: a space instance for every search instead of the registered one (tests).
        stream: where the table is printed (default stdout).
        debug: print each failed search's whole error (a traceback) to stderr; without it
            Tune's traceback logging is silenced and the summary's ``error`` column holds
            one line per failed search.
        quiet: no Ray or Tune banners.

    Returns:
        One row per search (also ``OUT/summary.csv``): the grid values, ``best_arch``,
        ``objective`` (the best's proxy score, or mean rank), ``params``, ``flops``,
        ``trials``, ``seconds``, the ground-truth column when configured, and ``error``.
    """
    from searchkd.orchestrate.driver import prepare

    sweep = load_sweep(config_toml_path)
    opened: set[tuple[str, int]] = set()
    for name, cfg in sweep["searches"].items():  # bad input fails here, before Ray starts or anything is written
        try:
            plan = prepare(cfg, space, check_proxies=evaluator_factory is None)
            key = (str(plan.config.data), str(plan.config.batch_size))
            if evaluator_factory is None:
                check_inputs(plan.config, plan.space, device=False, data=key not in opened)
        except (SearchKDError, TypeError, ValueError, AttributeError) as e:  # a value of the wrong type too
            raise SearchKDError(f"{config_toml_path}: search {name}: {e}") from None
        opened.add(key)
    gt = read_ground_truth(sweep["ground_truth"], sweep["column"], sweep["dataset"]) if sweep["ground_truth"] else None
    out = Path(sweep["out"])

    from searchkd.orchestrate.ray_runner import connect

    started = connect(ray_address, quiet=quiet, debug=debug)
    from ray import tune

    try:
        searches = {n: c.to_dict() for n, c in sweep["searches"].items()}
        trainable = tune.with_resources(
            tune.with_parameters(_sweep_trial, searches=searches, out=str(out), cpus=sweep["cpus_per_trial"],
                                 evaluator_factory=evaluator_factory, space=space),
            {"cpu": sweep["cpus_per_trial"], "gpu": sweep["gpus_per_trial"]})
        storage = out / ".tune"
        tuner = tune.Tuner(
            trainable, param_space={"name": tune.grid_search(list(searches))},
            tune_config=tune.TuneConfig(trial_dirname_creator=lambda t: str(t.trial_id)),
            run_config=tune.RunConfig(storage_path=str(storage), name="sweep", verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=sweep["max_failures"])))
        results = tuner.fit()
    finally:
        if started:
            import ray

            ray.shutdown()
    by_name = {r.config["name"]: r for r in results}
    if debug:
        for name, r in by_name.items():
            if r.error is not None:
                print(f"search {name} failed:\n{r.error}", file=sys.stderr)
    rows = []
    for name, cfg in sweep["searches"].items():
        row = _summary_row(name, cfg, sweep["grid"], by_name.get(name))
        if gt is not None:
            row[sweep["column"]] = gt.get(row["best_arch"], "")
        rows.append(row)
    _write_summary(rows, out / "summary.csv", stream or sys.stdout)
    return rows


def _summary_row(name: str, cfg: SearchConfig, grid: list[str], r: Any) -> dict[str, Any]:
    """A summary row from a Tune result ``r`` (None: the search never ran)."""
    row: dict[str, Any] = {"name": name, **{k: getattr(cfg, k) for k in grid}}
    res = json.loads(r.metrics["result"]) if r is not None and r.error is None and "result" in (r.metrics or {}) else None
    if res is None or res.get("best") is None:
        err = (("every score non-finite" if res.get("all_nonfinite") else "no feasible arch") if res is not None
               else (one_line_error(r.error) if r else "not run"))
        row.update(best_arch="", objective="", params="", flops="", trials="", seconds="", error=err)
    else:
        best = res["best"]
        objective = res.get("objective")
        row.update(best_arch=best["arch"], objective="" if objective is None else objective, params=best["params"],
                   flops=best["flops"], trials=res["trials"], seconds=round(res["seconds"], 2), error="")
    return row


def _write_summary(rows: list[dict[str, Any]], path: Path, stream: Any) -> None:
    write_rows(path, rows)  # atomic, like every result file
    cols = list(rows[0]) if rows else []
    shown = [c for c in cols if c not in ("seconds",)]
    cells = [[_fmt(r[c]) for c in shown] for r in rows]
    widths = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(shown)]
    print("  ".join(c.ljust(w) for c, w in zip(shown, widths)), file=stream)
    for x in cells:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths)), file=stream)
    print(f"summary: {path}", file=stream)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
