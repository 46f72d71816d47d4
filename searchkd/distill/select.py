"""Which students a verification trains: the search's top-K (or its Pareto set), seeded random
controls of the same space, and optional extra architectures (e.g. the vanilla-best one)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["Student", "read_result", "proxy_name", "pick_students", "fill_scores", "search_eval_config"]

#: spaces whose networks are image classifiers this trainer can distil
IMAGE_SPACES = ("nb201", "resnet_cifar")


@dataclass
class Student:
    """A student to train: ``role`` is ``top``, ``control``, ``vanilla-best`` or ``include``."""

    arch: str
    role: str
    score: float | None = None
    score_source: str = "search"  # "search" (trials.jsonl), "rescored", or "none"
    rank: int | None = None  # 1-based rank by proxy among the search's trials (top students)


def read_result(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``result.json`` and the trials of ``trials.jsonl`` beside it (empty when absent).

    A last line cut short by a kill is skipped; any other unreadable line is an error.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    if not path.is_file():
        raise SearchKDError(f"result file not found: {path}")
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SearchKDError(f"{path} is not a searchkd result.json ({type(e).__name__}: {e})") from None
    if not isinstance(result, dict) or not isinstance(result.get("config"), dict) or "space" not in result["config"]:
        raise SearchKDError(f"{path} is not a searchkd result.json (no config.space)")
    trials: list[dict[str, Any]] = []
    tpath = path.parent / "trials.jsonl"
    if tpath.is_file():
        lines = tpath.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                t = json.loads(line)
                if not isinstance(t, dict) or "arch" not in t:
                    raise ValueError("no 'arch'")
            except ValueError as e:
                if n == len(lines):
                    break
                raise SearchKDError(f"{tpath}:{n}: not a trial record ({e})") from None
            trials.append(t)
    return result, trials


def proxy_name(config: dict[str, Any], trials: Sequence[dict[str, Any]], proxy: str | None = None) -> str:
    """The score the search ranked by: ``proxy`` if given, else the config's (first) proxy."""
    if proxy is None:
        p = config.get("proxy")
        names = p if isinstance(p, list) else [s.strip() for s in str(p or "").split(",") if s.strip()]
        if not names and trials:
            names = sorted(trials[0].get("scores", {}))
        if not names:
            raise SearchKDError("the result names no proxy (config.proxy) and its trials hold no scores")
        proxy = names[0]
    if trials and not any(proxy in (t.get("scores") or {}) for t in trials):
        known = sorted({k for t in trials for k in (t.get("scores") or {})})
        raise SearchKDError(f"no trial has a {proxy!r} score (scores present: {', '.join(known) or 'none'})")
    return proxy


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def pick_students(result: dict[str, Any], trials: Sequence[dict[str, Any]], space: Any, proxy: str, *,
                  top: int, controls: int, seed: int = 0, vanilla_best: str | None = None,
                  include: Sequence[str] = ()) -> tuple[list[Student], str]:
    """The students and how the top ones were chosen (``"top-k"`` or ``"pareto"``).

    Top students: the ``top`` best distinct trials by ``proxy`` (ties: the earlier trial);
    when the search had several objectives, the Pareto set instead, best proxy first, at
    most ``top`` of it. Controls: ``controls`` seeded uniform samples of the space, distinct
    from each other and from every other student, within the search's ``max_params``.
    """
    if not (isinstance(top, int) and top > 0):
        raise SearchKDError(f"top must be a positive integer, got {top!r}")
    if not (isinstance(controls, int) and controls >= 0):
        raise SearchKDError(f"controls must be a non-negative integer, got {controls!r}")
    best: dict[str, tuple[float, int]] = {}
    for order, t in enumerate(trials):
        arch = space.validate(t["arch"])
        s = _finite((t.get("scores") or {}).get(proxy))
        key = (-math.inf if s is None else s, -order)
        if arch not in best or key > best[arch]:
            best[arch] = key
    if not best:  # no trials.jsonl: the result's own best and Pareto entries
        for order, e in enumerate([result.get("best") or {}] + list(result.get("pareto") or [])):
            if e.get("arch"):
                s = _finite((e.get("scores") or {}).get(proxy))
                best.setdefault(space.validate(e["arch"]), (-math.inf if s is None else s, -order))
    if top > len(best):
        raise SearchKDError(f"top {top} asked for, but the search evaluated only {len(best)} distinct architectures")
    ranked = sorted(best, key=lambda a: best[a], reverse=True)
    rank_of = {a: i + 1 for i, a in enumerate(ranked)}
    objectives = result.get("config", {}).get("objectives") or []
    if isinstance(objectives, str):
        objectives = [o for o in objectives.split(",") if o.strip()]
    front = [space.validate(e["arch"]) for e in result.get("pareto") or [] if e.get("arch")]
    how = "top-k"
    if len(objectives) > 1 and len(front) > 1:
        how = "pareto"
        chosen = sorted(dict.fromkeys(front), key=lambda a: best.get(a, (-math.inf, 0)), reverse=True)[:top]
    else:
        chosen = ranked[:top]
    students = [Student(a, "top", _finite(best[a][0]) if a in best else None, rank=rank_of.get(a)) for a in chosen]
    taken = set(chosen)
    for arch, role in [(vanilla_best, "vanilla-best")] + [(a, "include") for a in include]:
        if arch is None:
            continue
        arch = space.validate(arch)
        if arch not in taken:
            taken.add(arch)
            s = best.get(arch)
            students.append(Student(arch, role, _finite(s[0]) if s else None, "search" if s else "none", rank_of.get(arch)))
    size = space.size()
    if size is not None and controls > size - len(taken):
        raise SearchKDError(f"{controls} controls asked for, but the space has only {size - len(taken)} other architectures")
    # controls obey the search's size constraint, so the pick is compared with its peers
    max_params = (result.get("config") or {}).get("max_params")
    rng = np.random.default_rng([seed, 0xC0])
    tries = 0
    n_controls = 0
    while n_controls < controls:
        arch = space.validate(space.sample(rng))
        tries += 1
        if arch in taken or (max_params is not None and space.cost(arch)["params"] > max_params):
            if tries > 1000 * (controls + 1):
                raise SearchKDError("could not sample enough distinct control architectures")
            continue
        taken.add(arch)
        s = best.get(arch)
        students.append(Student(arch, "control", _finite(s[0]) if s else None, "search" if s else "none", rank_of.get(arch)))
        n_controls += 1
    return students, how


def search_eval_config(config: dict[str, Any], **changes: Any) -> Any:
    """The :class:`~searchkd.evaluate.EvalConfig` the search scored with (its data, batch size,
    ``proxy_seed`` or else ``seed``, teacher), built from ``result.json``'s config by the very
    function the search used; ``changes`` replace fields (e.g. ``proxies``, ``device``)."""
    from dataclasses import replace

    from searchkd.evaluate import eval_config
    from searchkd.types import SearchConfig

    return replace(eval_config(SearchConfig.from_dict(config)), **changes)


def fill_scores(students: Sequence[Student], space: Any, config: dict[str, Any], proxy: str,
                device: str = "cpu") -> str | None:
    """Score the students the search never evaluated, with the search's own proxy settings.

    ``params``/``flops`` come from the space's cost model; other proxies are recomputed with
    an :class:`~searchkd.evaluate.Evaluator` built from the result's config exactly as the
    search built its own (:func:`search_eval_config`: same teacher, data, batch and proxy
    seed), so a rescored student gets the score the search would have given it (the device
    is this run's; a proxy's score does not depend on the other proxies scored with it).
    Returns a note when some could not be scored (they are then left out of the correlations).
    """
    missing = [s for s in students if s.score is None]
    if not missing:
        return None
    known = [s for s in students if s.score is not None and s.score_source == "search"]
    cost_is_score = proxy in ("params", "flops") and all(
        math.isclose(float(space.cost(s.arch)[proxy]), s.score, rel_tol=1e-6) for s in known[:3])
    if cost_is_score:  # the cost model gives exactly what the search recorded
        for s in missing:
            s.score, s.score_source = float(space.cost(s.arch)[proxy]), "rescored"
        return None
    try:
        from searchkd.evaluate import Evaluator

        ev = Evaluator(search_eval_config(config, proxies=(proxy,), device=device))
        records = ev([s.arch for s in missing])
    except (SearchKDError, ImportError) as e:
        return f"could not score {len(missing)} students with {proxy!r} ({e}); they are left out of the correlations"
    for s, r in zip(missing, records):
        s.score, s.score_source = _finite(r["scores"].get(proxy)), "rescored"
    return None
