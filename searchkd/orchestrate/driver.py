"""The search driver: one loop of ask → dedupe → evaluate → log → tell, for every runner.

The strategy always lives in this process; a runner (local, or Ray Tune) only evaluates a
batch of architectures. Each step asks the strategy for ``ask_size`` archs and

1. drops those evaluated before (their cached score is told again, for free), repeats
   within the batch, and, under ``max_params``, infeasible ones (told as infeasible with
   their violation, never evaluated, not counted in the budget);
2. evaluates the rest, at most what the budget has left, and appends them to
   ``trials.jsonl`` as one fsynced write;
3. tells the strategy every asked arch that has a score (re-telling all held scores when
   the objective is a mean rank, see :mod:`searchkd.orchestrate.objective`).

The search ends when ``budget`` distinct archs are evaluated, when the space is exhausted,
or after ``max_stale`` consecutive steps that evaluate nothing new.

**Resume by replay.** A strategy's asks depend only on its seed and what it was told, so
a resumed search re-runs the same loop from the start, answering archs from the log
instead of evaluating them; when the log runs out it carries on evaluating. A kill loses
at most the batch in flight, and the resumed search ends with the same best arch as an
uninterrupted one. ``config.json`` pins the config: resuming a different one is refused
(except a larger ``budget``, which extends the search, and ``device``).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Generator, Mapping, Sequence

import numpy as np

from searchkd._version import __version__
from searchkd.errors import SearchKDError
import searchkd.trials as tlog
from searchkd.orchestrate.checks import StartGuard, check_inputs, check_out_writable
from searchkd.orchestrate.local import MAX_FAILURES, EvaluatorFactory, LocalRunner, absolute_config, eval_config
from searchkd.progress import Progress
from searchkd.orchestrate.objective import Objectives, pareto_front
from searchkd.strategies.base import fitness_key
from searchkd.types import SearchConfig, SearchResult, Trial

__all__ = ["run_search", "prepare", "Plan", "RESUME_MAY_CHANGE"]

#: the driver loop: yields batches of archs, is sent their records, returns the trials
Steps = Generator[list[str], list[dict[str, Any]], list[Trial]]

#: config fields a resume may change
RESUME_MAY_CHANGE = ("budget", "device")


@dataclass
class Plan:
    """A validated search: the normalised config and the objects it names."""

    config: SearchConfig
    space: Any
    strategy_cls: Any
    objectives: Objectives
    ask_size: int
    num_classes: int | None = None  # the students' head (the data's classes) once the data is opened


def prepare(config: SearchConfig | Mapping[str, Any], space: Any = None, *, check_proxies: bool = True) -> Plan:
    """Validate a config (:class:`SearchKDError` for bad input) and fill its defaults.

    Fills ``teacher`` (the space's default) and ``ask_size`` (the strategy's default).
    """
    config = config if isinstance(config, SearchConfig) else SearchConfig.from_dict(config)
    if not isinstance(config.budget, (int, np.integer)) or isinstance(config.budget, bool) or config.budget <= 0:
        raise SearchKDError(f"budget must be a positive number of evaluations (epochs for darts, sd-darts), got {config.budget!r}")
    if space is None:
        from searchkd.spaces import get_space

        space = get_space(config.space)
    import searchkd.strategies  # noqa: F401  (registration)
    from searchkd.orchestrate.applicable import check_applicable, check_teacher_used
    from searchkd.registry import STRATEGIES

    strategy_cls = STRATEGIES.get(config.strategy)
    if getattr(strategy_cls, "own_loop", False):  # a weight-sharing strategy with its own epoch loop (darts)
        check_applicable(config)  # a setting this search would ignore or replace is refused, not dropped
        config = strategy_cls.check(config, space)
        return Plan(config, space, strategy_cls, Objectives(("proxy",), config.proxies), 1)
    if not (isinstance(strategy_cls, type) and hasattr(strategy_cls, "ask") and hasattr(strategy_cls, "tell")):
        raise SearchKDError(f"strategy {config.strategy!r} has no ask/tell interface; it runs through its own entry point")
    if not config.proxies:
        raise SearchKDError("no proxy given")
    text = getattr(space, "modality", "image") == "text"
    if text:
        from searchkd.evaluate.text import check_text_config

        check_text_config(config, space)
    elif "superlm" in config.proxies or config.supernet is not None:
        raise SearchKDError(f"the superlm proxy and --supernet score BERT students (bert-tiny, bert-small, bert-base), "
                            f"not {config.space}")
    if check_proxies and not text:
        from searchkd.proxies import get_proxy

        for p in config.proxies:
            get_proxy(p)
    check_applicable(config)
    if check_proxies or text:
        check_teacher_used(config, text)
    objectives = Objectives(config.objectives, config.proxies, config.combine)
    strategy_cls.check_objectives(len(objectives.names))
    ask_size = strategy_cls.default_ask_size if config.ask_size is None else config.ask_size
    if not isinstance(ask_size, (int, np.integer)) or ask_size < 1:
        raise SearchKDError(f"ask_size must be a positive integer, got {ask_size!r}")
    try:  # options the strategy does not take are bad input, caught before any work
        strategy_cls(space, np.random.default_rng(0), n_objectives=len(objectives.names), **config.options)
    except TypeError as e:
        raise SearchKDError(f"strategy {config.strategy!r}: bad option ({e})") from None
    if config.max_params is not None:
        _check_max_params(space, float(config.max_params))
    teacher = config.teacher if config.teacher is not None else (getattr(space, "default_teacher", "") or None)
    config = replace(config, teacher=teacher, ask_size=int(ask_size))
    return Plan(config, space, strategy_cls, objectives, int(ask_size))


def _check_max_params(space: Any, m: float, num_classes: int | None = None) -> None:
    from searchkd.spaces import cost_for

    if not (math.isfinite(m) and m > 0):
        raise SearchKDError(f"max_params must be a finite positive number of millions of parameters, got {m}")
    bounds = space.bounds()
    if cost_for(space, space.decode([0] * len(bounds)), num_classes)["params"] <= m:
        return
    size = space.size()
    if size is not None and size <= 100_000:
        archs = (space.decode(list(v)) for v in np.ndindex(*bounds))
    else:  # too many to enumerate: a sample stands in (a feasible arch missed here is rare)
        rng = np.random.default_rng(0)
        archs = (space.sample(rng) for _ in range(2000))
    smallest = math.inf
    for a in archs:
        p = cost_for(space, a, num_classes)["params"]
        if p <= m:
            return
        smallest = min(smallest, p)
    raise SearchKDError(f"max_params {m} M is below the smallest architecture of the space ({smallest:.6g} M)")


def run_search(
    config: SearchConfig | Mapping[str, Any],
    out_dir: str | Path,
    *,
    resume: bool = False,
    runner: str = "local",
    progress: bool | None = None,
    ray_address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_failures: int = MAX_FAILURES,
    evaluator: Callable[[], Callable[[Sequence[str]], list[dict[str, Any]]]] | None = None,
    space: Any = None,
    plots: bool = True,
    max_stale: int = 100,
) -> SearchResult:
    """Run (or resume) a search; write ``result.json``, ``trials.jsonl``, ``config.json`` and plots.

    Args:
        config: a :class:`SearchConfig` or its dict.
        out_dir: the search directory (created). It must not hold another search unless
            ``resume`` is set.
        resume: continue the search logged in ``out_dir`` (a fresh start when there is none).
        runner: ``local`` (this process, no Ray) or ``ray`` (Ray Tune, one trial per chunk).
        progress: a bar on stderr when it is a terminal (None/True); False: never.
        ray_address: an existing cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``);
            None starts a local Ray with every CPU.
        cpus_per_trial, gpus_per_trial, max_failures: Ray Tune resources and retries.
        evaluator: a zero-argument factory of ``evaluate(archs) -> records`` replacing the
            proxy :class:`~searchkd.evaluate.Evaluator` (tests, score caches); pickled to
            the workers with ``runner="ray"``.
        space: a space instance to search instead of the registered ``config.space``.
        plots: write ``pareto.png`` and ``trajectory.png``.
        max_stale: stop after this many consecutive steps that evaluate nothing new.

    Returns:
        The :class:`SearchResult` also written to ``out_dir/result.json``. ``best`` is the
        feasible trial best by the first objective (ties: the earliest); ``pareto`` the
        feasible non-dominated trials over the objectives, or over (proxy, params) when
        there is one objective; ``seconds`` the wall time of this call.
    """
    t0 = time.perf_counter()
    plan = prepare(config, space, check_proxies=evaluator is None)
    config = plan.config
    out = Path(out_dir)
    own_loop = getattr(plan.strategy_cls, "own_loop", False)
    prior, good = _check_out_dir(out, config, resume, getattr(plan.strategy_cls, "resume_may_change", RESUME_MAY_CHANGE),
                                 read=not own_loop)
    if runner not in ("local", "ray"):
        raise SearchKDError(f"unknown runner {runner!r} (local, ray)")
    if evaluator is None:  # the whole config, before anything is created (a custom evaluator brings its own inputs)
        classes = check_inputs(config, plan.space, device=runner == "local", data=not own_loop)
        plan = replace(plan, num_classes=classes)
        if config.max_params is not None and classes is not None:  # again, with the data's head
            _check_max_params(plan.space, float(config.max_params), classes)
    check_out_writable(out, directory=True)
    factory = evaluator if evaluator is not None or own_loop else EvaluatorFactory(eval_config(config))
    if runner == "ray":
        from searchkd.orchestrate.ray_runner import RayRunner

        run = RayRunner(factory, address=ray_address, cpus_per_trial=cpus_per_trial,
                        gpus_per_trial=gpus_per_trial, max_failures=max_failures, quiet=progress is False)
    else:
        run = LocalRunner(factory)
    guard = StartGuard(out, fresh=not (out / tlog.CONFIG).exists())
    if own_loop:
        with guard:
            return _run_own_loop(plan, out, run, resume, progress if runner == "local" else False, t0)
    try:
        if runner == "local" and evaluator is None and "superlm" not in config.proxies:
            run.prime()  # teacher, batch and proxy state built before config.json is written
    except BaseException:
        run.close()
        raise
    with guard:
        records = _search_loop(plan, out, run, runner, good, prior, progress, max_stale, evaluator)
    supernet = getattr(run, "supernet", None)
    result = _result(plan, records, time.perf_counter() - t0)
    result.to_json(out / tlog.RESULT)
    for note in result.notes:  # said once the search ran (a bad input stays one error line), kept in result.json
        warnings.warn(note, UserWarning, stacklevel=2)
    if supernet is not None and result.best is not None:  # after result.json: a failed export loses no search
        from searchkd.evaluate.text import export_search_best

        result.student = str(export_search_best(absolute_config(config), supernet, result.best.arch, out))
        result.to_json(out / tlog.RESULT)
    if plots and records and result.best is not None:
        from searchkd.orchestrate.plots import plot_search

        plot_search(result, plan.objectives, out)
    return result


def _search_loop(plan: Plan, out: Path, run: Any, runner: str, good: int, prior: list[Trial], progress: bool | None,
                 max_stale: int, evaluator: Any) -> list[Trial]:
    """The ask/tell search through ``run``; sets ``run.supernet`` when a SuperLM scores it."""
    config = plan.config
    try:
        if evaluator is None and "superlm" in config.proxies:  # train (one Tune trial on Ray) or reuse a SuperLM
            from searchkd.evaluate.text import ensure_superlm

            run.supernet, _ = run.run_once(ensure_superlm, absolute_config(config), str(out.resolve()),
                                           progress if runner == "local" else False)
            run.factory = EvaluatorFactory(replace(eval_config(config), supernet=run.supernet))
        out.mkdir(parents=True, exist_ok=True)
        tlog.write_json(out / tlog.CONFIG, {"searchkd_version": __version__, "config": config.to_dict()})
        tlog.cut_torn_tail(out / tlog.TRIALS, good)
        status = ("starting Ray trials" if runner == "ray" else
                  "loading the data" + (", preparing the teacher" if _needs_teacher(config) else "") + ", first scores")
        bar = Progress(config.budget, "search", enabled=progress, status=status)
        return run.drive(_steps(plan, out / tlog.TRIALS, prior, bar,
                                max_stale))
    finally:
        run.close()


def _needs_teacher(config: SearchConfig) -> bool:
    from searchkd.proxies import get_proxy

    try:
        return any(get_proxy(p).needs_teacher for p in config.proxies)
    except SearchKDError:  # a text space's proxies (superlm): its teacher is in the SuperLM
        return False


def _run_own_loop(plan: Plan, out: Path, run: Any, resume: bool, progress: bool | None, t0: float) -> SearchResult:
    """A strategy with its own epoch loop (darts): its ``run`` once, here or as one Tune trial;
    it appends one record per epoch to ``trials.jsonl``; ``best`` is the last record's arch."""
    config = plan.config
    try:
        out.mkdir(parents=True, exist_ok=True)
        tlog.write_json(out / tlog.CONFIG, {"searchkd_version": __version__, "config": config.to_dict()})
        run.run_once(plan.strategy_cls.run, absolute_config(config), str(out.resolve()), resume, progress)
    finally:
        run.close()
    records, _ = tlog.read_trials(out / tlog.TRIALS, unique=False)
    best = records[-1] if records else None
    result = SearchResult(config=config.to_dict(), best=best, pareto=[] if best is None else [best], trials=len(records),
                          seconds=time.perf_counter() - t0, searchkd_version=__version__, history=records)
    result.to_json(out / tlog.RESULT)
    return result


def _check_out_dir(out: Path, config: SearchConfig, resume: bool, may_change: Sequence[str] = RESUME_MAY_CHANGE,
                   read: bool = True) -> tuple[list[Trial], int]:
    """The logged trials to replay (none unless ``read``); refuses (before writing anything)
    what cannot be resumed: another config, except in the fields ``may_change``."""
    log, cfg = out / tlog.TRIALS, out / tlog.CONFIG
    if out.exists() and not out.is_dir():
        raise SearchKDError(f"{out} exists and is not a directory")
    if not resume:
        if log.exists() or cfg.exists():
            raise SearchKDError(f"{out} already holds a search; resume it (--resume) or choose another --out")
        return [], 0
    if not cfg.exists():
        if log.exists() and log.stat().st_size > 0:
            raise SearchKDError(f"{log} has no {tlog.CONFIG} beside it, so it cannot be checked against this config")
        return [], 0
    old = tlog.read_json(cfg)
    try:
        old_cfg = SearchConfig.from_dict(old["config"]).to_dict()
    except (KeyError, TypeError, SearchKDError) as e:
        raise SearchKDError(f"{cfg} is not a search config ({e})") from None
    new_cfg = config.to_dict()
    diff = [k for k in new_cfg if k not in may_change and old_cfg.get(k) != new_cfg[k]]
    if diff:
        shown = ", ".join(f"{k}: {old_cfg.get(k)!r} → {new_cfg[k]!r}" for k in diff)
        raise SearchKDError(f"cannot resume {out} with a different config ({shown}); use another --out")
    if not read:
        return [], 0
    prior, good = tlog.read_trials(log)
    if len(prior) > config.budget:
        raise SearchKDError(f"{out} already holds {len(prior)} trials, more than budget {config.budget}")
    return prior, good


def _steps(plan: Plan, log: Path, prior: list[Trial], bar: Progress, max_stale: int) -> Steps:
    """The search loop as a generator: yields each batch to evaluate, is sent its records,
    returns the trials. Runners drive it (the Ray runner from a Tune ``Searcher``)."""
    from searchkd.spaces import cost_for

    config, space, obj = plan.config, plan.space, plan.objectives
    strategy = plan.strategy_cls(space, np.random.default_rng(config.seed), n_objectives=len(obj.names),
                                 **config.options)
    replay = {t.arch: t for t in prior}
    records: dict[str, Trial] = {}
    infeasible: dict[str, float] = {}  # arch → violation (never evaluated)
    size = space.size()
    stale = 0
    while len(records) < config.budget and stale < max_stale and (size is None or len(records) + len(infeasible) < size):
        asked = strategy.ask(plan.ask_size)
        if not asked:
            break
        new: list[str] = []
        for a in asked:
            if a in records or a in infeasible or a in new:
                continue
            if config.max_params is not None:
                p = float(cost_for(space, a, plan.num_classes)["params"])
                if p > config.max_params:
                    infeasible[a] = p - float(config.max_params)
                    continue
            new.append(a)
        new = new[: config.budget - len(records)]
        todo = [a for a in new if a not in replay]
        if todo and len(replay) > sum(a in replay for a in new):
            raise SearchKDError(f"{log} does not match a replay of this config (arch {todo[0]!r} was never logged "
                                "before later records); the log was written by another version; use another --out")
        fresh = _by_arch(todo, (yield todo)) if todo else {}
        step: list[Trial] = []
        for a in new:
            i = len(records) + len(step)
            if a in replay:
                t = replay.pop(a)
                if t.i != i:
                    raise SearchKDError(f"{log} does not match a replay of this config (record {t.i} comes at {i})")
            else:
                r = fresh[a]
                t = Trial(i=i, arch=a, scores={k: float(v) for k, v in r["scores"].items()}, params=float(r["params"]),
                          flops=float(r["flops"]), seconds=float(r.get("seconds", 0.0)))
            step.append(t)
        tlog.append_trials(log, [t for t in step if t.arch in fresh])
        records.update((t.arch, t) for t in step)
        stale = 0 if step else stale + 1
        obj.update(list(records.values()))
        told = [a for a in asked if a in records or a in infeasible]
        strategy.tell(told, [obj.told(records[a]) if a in records else obj.worst() for a in told],
                      [0.0 if a in records else infeasible[a] for a in told])
        if obj.dynamic:
            strategy.rescore(lambda a: obj.told(records[a]) if a in records else obj.worst())
        best = _best(list(records.values()), obj)
        bar.replayed(sum(t.arch not in fresh for t in step))
        bar.moveto(len(records), **({} if best is None else {"best": obj.values(best)[0]}))
    bar.close()
    if replay:
        warnings.warn(f"{len(replay)} logged trials of {log} were not reached by the replay and are ignored",
                      RuntimeWarning, stacklevel=3)
    return list(records.values())


def _by_arch(asked: list[str], recs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The evaluated records keyed by their own ``arch``, in whatever order they came; a
    missing, extra or repeated record is an evaluator error, never a silent mismatch."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in recs:
        a = r.get("arch") if isinstance(r, Mapping) else None
        if a in out:
            raise SearchKDError(f"the evaluator returned two records for arch {a!r}")
        out[a] = r
    if set(out) != set(asked):
        missing, extra = [a for a in asked if a not in out], [a for a in out if a not in set(asked)]
        raise SearchKDError(f"the evaluator's records do not match the archs asked "
                            f"(missing {missing[:2]}{'…' if len(missing) > 2 else ''}, extra {extra[:2]}"
                            f"{'…' if len(extra) > 2 else ''})")
    return out


def _best(records: list[Trial], obj: Objectives) -> Trial | None:
    if not records:
        return None
    return max(records, key=lambda t: (fitness_key(obj.values(t)[0]), -t.i))


def _notes(plan: Plan) -> list[str]:
    """The strategy's one-line notes on this config (``budget_note``: evolution whose budget leaves
    no evolution step)."""
    note = getattr(plan.strategy_cls, "budget_note", None)
    text = note(int(plan.config.budget), plan.config.options) if note is not None else None
    return [text] if text else []


def _result(plan: Plan, records: list[Trial], seconds: float) -> SearchResult:
    obj = plan.objectives
    obj.update(records)
    if len(obj.names) > 1:
        points = [obj.values(t) for t in records]
    else:
        points = [(obj.proxy_value(t), -t.params) for t in records]
    if records and not any(math.isfinite(v) for t in records for v in t.scores.values()):
        # nothing to rank: an arbitrary "best" would look like a finding
        return SearchResult(config=plan.config.to_dict(), best=None, pareto=[], trials=len(records), seconds=seconds,
                            searchkd_version=__version__, history=records, all_nonfinite=True, notes=_notes(plan))
    return SearchResult(config=plan.config.to_dict(), best=_best(records, obj), pareto=pareto_front(records, points),
                        trials=len(records), seconds=seconds, searchkd_version=__version__, history=records,
                        notes=_notes(plan))
