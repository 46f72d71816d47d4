"""The public Python surface of searchkd. The CLI calls these and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from searchkd.defaults import default_batch_size, default_data, default_proxy
from searchkd.errors import SearchKDError

__all__ = ["get_space", "list_spaces", "list_proxies", "list_strategies", "list_teachers", "describe"]


def _load_plugins() -> None:
    # Each subpackage imports its modules explicitly, which registers them.
    import searchkd.spaces  # noqa: F401
    import searchkd.teachers  # noqa: F401

    for mod in ("searchkd.proxies", "searchkd.strategies"):
        try:
            __import__(mod)
        except ModuleNotFoundError as e:  # a family not built yet
            if e.name != mod:
                raise


def get_space(name: str) -> Any:
    """The search space registered as ``name``."""
    from searchkd.spaces import get_space as _get

    return _get(name)


def _registry(what: str) -> Any:
    from searchkd import registry

    _load_plugins()
    return {"spaces": registry.SPACES, "proxies": registry.PROXIES,
            "strategies": registry.STRATEGIES, "teachers": registry.TEACHERS}[what]


def list_spaces() -> list[str]:
    return _registry("spaces").names()


def list_proxies() -> list[str]:
    return _registry("proxies").names()


def list_strategies() -> list[str]:
    return _registry("strategies").names()


def list_teachers() -> list[str]:
    return _registry("teachers").names()


def describe(what: str) -> list[tuple[str, str]]:
    """``(name, one-line description)`` for every member of a registry family."""
    if what not in ("spaces", "proxies", "strategies", "teachers"):
        raise SearchKDError(f"unknown family {what!r} (spaces, proxies, strategies, teachers)")
    reg = _registry(what)
    return [(n, reg.description(n)) for n in reg.names()]


def _is_module(x: Any) -> bool:
    return hasattr(x, "parameters") and hasattr(x, "forward")


def score(student: Any, teacher: Any = None, batch: Any = None, proxy: str = "diswot", space: str | None = None,
          seed: int = 0, device: str | None = None, teacher_weights: str | None = None) -> float:
    """Score one student with one proxy (higher is better).

    Args:
        student: an ``nn.Module`` (with ``forward_features`` and ``classifier``) or an
            architecture string of ``space``.
        teacher: an ``nn.Module``, a teacher spec (``resnet56``, ``SPACE:ARCH``) or None for
            the space's default teacher (used only by proxies that need one).
        batch: ``(images, labels)`` tensors; None draws 64 images of the embedded data.
        proxy: a registered proxy name.
        space: the space of ``student``/``teacher`` strings.
        seed: seeds every random initialisation and the proxy's own randomness.
        device: ``"cpu"``, ``"cuda"`` or None/``"auto"``.
        teacher_weights: a state dict for a teacher given by name.
    """
    import torch

    from searchkd.data import load_images
    from searchkd.devices import resolve_device
    from searchkd.proxies import Scorer, get_proxy
    from searchkd.seeds import teacher_seed
    from searchkd.teachers import build_teacher

    spec = get_proxy(proxy)
    if batch is None:
        batch = load_images("embedded").batch(64, seed=seed)
    images, labels = batch
    if isinstance(student, str) and space is None:
        raise SearchKDError("a student given as an architecture string needs `space`")
    num_classes = None
    if _is_module(student):
        num_classes = student.classifier.out_features if hasattr(student, "classifier") else None
    if num_classes is None and labels.numel():
        num_classes = int(labels.max()) + 1
    t = None
    if spec.needs_teacher:
        if _is_module(teacher):
            t = teacher
        else:
            with torch.random.fork_rng():
                torch.manual_seed(teacher_seed(seed))
                t = build_teacher(teacher, space=space, num_classes=num_classes or 10, weights=teacher_weights)
    scorer = Scorer([proxy], batch, teacher=t, num_classes=num_classes, seed=seed, device=resolve_device(device))
    if isinstance(student, str):
        return scorer.score_arch(get_space(space), get_space(space).validate(student))["scores"][proxy]
    return scorer.score_net(student)[proxy]


def score_archs(space: str, archs: list[str], proxies: list[str] | str, teacher: str | None = None,
                data: str = "embedded", batch_size: int = 64, seed: int = 0, device: str | None = None,
                combine: str | None = None, teacher_weights: str | None = None, progress: bool | None = None,
                timings: dict[str, float] | None = None, supernet: str | None = None) -> list[dict[str, Any]]:
    """Score many architectures of ``space``; one row per arch: ``arch``, one column per
    proxy, ``params`` (M), ``flops`` (M), and ``rank`` when ``combine="rank"`` (the mean of
    the proxies' ranks over these archs, Abdelfattah et al. 2021). ``timings``, when given,
    receives the seconds spent in each proxy over all archs. ``supernet``: a trained SuperLM
    directory (a search's ``OUT/supernet``) for the ``superlm`` proxy of a ``bert-*`` space; it
    must have been trained from this teacher on the train side of this ``data`` and ``seed``."""
    from searchkd.evaluate import EvalConfig, Evaluator, combine_ranks
    from searchkd.progress import Progress

    names = [p.strip() for p in proxies.split(",")] if isinstance(proxies, str) else list(proxies)
    if combine not in (None, "rank"):
        raise SearchKDError(f"unknown --combine {combine!r} (rank)")
    if not archs:
        raise SearchKDError("no architectures to score")
    if supernet is not None and "superlm" not in names:
        raise SearchKDError("--supernet is the SuperLM of the superlm proxy; no proxy here uses it")
    if supernet is None and "superlm" in names:  # before the teacher and the text are loaded
        raise SearchKDError("the superlm proxy needs a trained SuperLM: --supernet DIR (a search's OUT/supernet) "
                            "for score, or a search trains one")
    ev = Evaluator(EvalConfig(space, tuple(names), teacher, teacher_weights, data, batch_size, seed, device or "auto",
                              supernet=supernet))
    rows = []
    status = "loading the data" + (", preparing the teacher" if any(s.needs_teacher for s in ev.specs) else "")
    with Progress(len(archs), "scoring", enabled=progress, status=status) as bar:
        cost = _cost_for(ev)  # builds the scorer (data, teacher) while the bar says so
        for arch in archs:
            rec = ev([arch])[0]
            rows.append({"arch": rec["arch"], **rec["scores"], **cost(rec), "seconds": rec["seconds"]})
            bar.update(1)
    if timings is not None:
        timings.update(ev.scorer.seconds)
    if combine == "rank":
        for r, v in zip(rows, combine_ranks(rows, names)):
            r["rank"] = v
    return rows


def _cost_for(ev: Any) -> Any:
    """``f(record)`` → the ``params``/``flops`` columns of a scored arch, for the class count of
    the data it was scored on (a space's ``cost`` counts its default head, 10 classes for nb201,
    resnet_cifar: with 100 classes the head has 5,850 more parameters). A proxy named
    ``params`` or ``flops`` is its own column (the scored network, the batch's image size)."""
    ev.scorer  # noqa: B018  (data and teacher now, under the caller's progress bar)
    space, n = ev.space, getattr(ev.scorer, "num_classes", None)
    own = {k: k for k in ("params", "flops") if k in ev.config.proxies}
    if ev.text or n is None:
        def exact(rec: dict[str, Any]) -> dict[str, Any]:
            return {"params": rec["params"], "flops": rec["flops"]}
    else:  # records cached by an older version counted the default head: recount
        from searchkd.spaces import cost_for

        def exact(rec: dict[str, Any]) -> dict[str, Any]:
            return {k: float(v) for k, v in cost_for(space, rec["arch"], n).items() if k in ("params", "flops")}

    def cost(rec: dict[str, Any]) -> dict[str, Any]:
        return {k: (rec["scores"][own[k]] if k in own else v) for k, v in exact(rec).items()}

    return cost


def pick_teacher(student: Any, candidates: list[str], *, space: str | None = None, ratio: float | None = None) -> Any:
    """The candidate teacher that best fits ``student`` (an arch or a size in M params)
    under the capacity-gap law; see :func:`searchkd.proxies.capacity_gap.pick_teacher`."""
    from searchkd.proxies.capacity_gap import DEFAULT_RATIO
    from searchkd.proxies.capacity_gap import pick_teacher as _pick

    return _pick(student, candidates, space=space, ratio=ratio or DEFAULT_RATIO)


def search(space: str = "nb201", proxy: str | None = None, strategy: str = "evolution", budget: int = 100, seed: int = 0,
           *, out: str | None = None, resume: bool = False, runner: str = "local", ray_address: str | None = None,
           cpus_per_trial: float = 1, gpus_per_trial: float = 0, progress: bool | None = None,
           ground_truth: str | None = None, column: str = "cifar10_test_acc", dataset: str | None = None,
           **options: Any) -> Any:
    """Search ``space`` for the student ``proxy`` likes best; returns a :class:`~searchkd.types.SearchResult`.

    ``options`` are the other fields of :class:`~searchkd.types.SearchConfig` (``teacher``,
    ``teacher_weights``, ``data``, ``batch_size``, ``device``, ``objectives``,
    ``max_params``, ``combine``, ``ask_size``, ``proxy_seed``, ``options`` for the
    strategy). With ``out`` the search writes ``result.json``, ``trials.jsonl`` and plots
    there and can be resumed; without it, it runs in a temporary directory.

    ``proxy`` None: the strategy's default score source (``autodistil``: ``superlm``; ``darts``,
    ``sd-darts``: ``derived_acc``), else the space's (BERT spaces: ``superlm``), else ``kd``.

    ``ground_truth`` (a CSV with ``arch`` and ``column``, or ``nb201:FILE.pth`` with ``dataset``,
    see :mod:`searchkd.data.ground_truth`): after the search, the best arch's value (and official
    index, where known) is looked up and stored in the result (``ground_truth``); the search
    never sees it.
    """
    import tempfile

    from searchkd.orchestrate import run_search
    from searchkd.types import SearchConfig

    if proxy is None:
        proxy = default_proxy(space, strategy)
    if options.get("data") is None:  # the space's kind of default data
        options["data"] = default_data(space, strategy)
    if options.get("batch_size") is None:  # 64 images, or a SuperLM's 16 rows
        options["batch_size"] = default_batch_size(space)
    if out is None and "superlm" in str(proxy).split(","):
        raise SearchKDError("a search with the superlm proxy needs out= (its SuperLM and the exported student are "
                            "written there)")
    config = SearchConfig.from_dict({"space": space, "proxy": proxy, "strategy": strategy, "budget": budget,
                                     "seed": seed, **options})
    kw = dict(resume=resume, runner=runner, ray_address=ray_address, cpus_per_trial=cpus_per_trial,
              gpus_per_trial=gpus_per_trial, progress=progress)
    truth = None
    if ground_truth is not None:  # read first: a bad file is bad input, found before the search
        from searchkd.data.ground_truth import read_ground_truth

        truth = read_ground_truth(ground_truth, column, dataset)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="searchkd-") as tmp:
            return _with_truth(run_search(config, tmp, plots=False, **kw), truth, ground_truth, column, None)
    return _with_truth(run_search(config, out, **kw), truth, ground_truth, column, out)


def _with_truth(result: Any, truth: Any, path: str | None, column: str, out: str | None) -> Any:
    """The result with the best arch's ground-truth value (None when the source lacks it)."""
    import os

    if truth is None or result.best is None:
        return result
    file = str(path) if str(path).startswith("nb201:") else os.path.abspath(str(path))
    result.ground_truth = {"file": file, "column": column, "arch": result.best.arch,
                           "value": truth.get(result.best.arch)}
    if result.best.arch in truth.index:
        result.ground_truth["index"] = truth.index[result.best.arch]
    if out is not None:
        result.to_json(Path(out) / "result.json")
    return result


def correlation(space: str, proxies: list[str], ground_truth: str | Path, column: str, *, sample: int | None = None,
                data: str = "embedded", batch_size: int = 64, teacher: str | None = None, seed: int = 0,
                device: str | None = None, combine: str | None = None, out: str | Path | None = None,
                progress: bool | None = None, dataset: str | None = None) -> dict[str, Any]:
    """``searchkd bench correlation``: how well proxies rank architectures against ground truth.

    Score ``sample`` seeded random archs of the ground truth (all when None) and correlate.

    ``ground_truth``: a CSV, or ``nb201:FILE.pth`` (the official file) for ``dataset`` (see
    :mod:`searchkd.data.ground_truth`). Writes ``out`` (JSON, the CONTRACT schema), a scatter PNG
    and the per-arch scores (``.scores.csv``, with the ground truth and the official
    ``index`` where the source has one) beside it when ``out`` is given.
    """
    import time

    import numpy as np

    from searchkd.bench.stats import rank_stats
    from searchkd.data.ground_truth import read_ground_truth
    from searchkd.io import write_json, write_rows
    from searchkd.orchestrate.plots import plot_correlation

    gt = read_ground_truth(ground_truth, column, dataset)
    sp = get_space(space)
    archs = sorted(gt)
    for a in archs[:5]:
        sp.validate(a)
    if sample is not None:
        if sample <= 0:
            raise SearchKDError(f"--sample must be positive, got {sample}")
        rng = np.random.default_rng(seed)
        archs = [archs[i] for i in sorted(rng.choice(len(archs), size=min(sample, len(archs)), replace=False))]
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rows = score_archs(space, archs, proxies, teacher=teacher, data=data, batch_size=batch_size, seed=seed,
                           device=device, combine=combine, progress=progress, timings=timings)
    elapsed = time.perf_counter() - t0
    truth = [gt[r["arch"]] for r in rows]
    cols = list(proxies) + (["rank"] if combine == "rank" else [])
    result: dict[str, Any] = {"space": space, "column": column, "n": len(rows), "data": data,
                              "batch_size": batch_size, "seed": seed, "proxies": {}}
    if dataset is not None:
        result["dataset"] = dataset
    for p in cols:
        stats = rank_stats([r[p] for r in rows], truth)
        # a proxy's own time per arch; the rank's is the whole scoring (building included)
        stats["seconds_per_arch"] = (elapsed if p == "rank" else timings.get(p, 0.0)) / len(rows)
        stats["nonfinite"] = int(sum(not np.isfinite(r[p]) for r in rows))
        result["proxies"]["rank(" + ",".join(proxies) + ")" if p == "rank" else p] = stats
    if out is not None:
        write_json(out, result)
        index = ({"index": gt.index.get(r["arch"], "")} if gt.index else {} for r in rows)
        write_rows(Path(out).with_suffix(".scores.csv"), [{**ix, **r, column: t} for ix, r, t in zip(index, rows, truth)])
        plot_correlation(Path(out).with_suffix(".png"), rows, truth, cols, column)
    return result


def load_result(path: str) -> Any:
    """A search's ``result.json`` (or its directory) as a :class:`~searchkd.types.SearchResult`."""
    from searchkd.types import SearchResult

    return SearchResult.from_json(path)


def distill(result: str, **options: Any) -> dict[str, Any]:
    """Distil the top students of a search and verify the proxy's ranking; see
    :func:`searchkd.distill.run_distill` for the options (a BERT space's result:
    :func:`searchkd.distill.text.run_text_distill`). Returns the ``verify.json`` report."""
    from searchkd.distill.text import route

    run, options = route(result, options)  # BERT spaces: searchkd.distill.text.run_text_distill
    return run(result, **options)


def load_acm(path: str, *, base_id: str | None = None, device: Any = None) -> tuple[Any, dict[str, Any]]:
    """A model converted by ``searchkd acm`` (``OUT/model-b{budget}/``), in eval mode, and its
    ``acm.json``; ``base_id`` refuses one converted from another base model. See
    :func:`searchkd.supernets.acm.io.load_acm`."""
    from searchkd.supernets.acm.io import load_acm as _load

    return _load(path, base_id=base_id, device=device)
