"""The Ray Tune runner: the driver loop runs inside a Tune ``Searcher``; Tune only evaluates.

One ``tune.Tuner`` runs the whole search. Its search algorithm is :class:`_StepSearcher`,
which lives in the driver process and wraps the driver loop (a generator): each batch the
loop yields is split into at most ``parallel`` chunks, each chunk is one Tune trial that
evaluates its architectures, and when every chunk of a batch is back the records go to the
loop (in ask order) and the next batch is split. So the strategy never leaves this process,
the results do not depend on how chunks are scheduled, and ``local`` and ``ray`` give the
same search for the same seed.

Trials reuse their actors (``reuse_actors=True``), and each worker keeps the evaluator it
built (teacher, batch, proxy state) for the next trials of the same search, so a trial
costs a fraction of a second of overhead rather than a process start. The searcher takes a
chunk's records from its report (``on_trial_result``), so the next batch is under way while
Tune still winds the trial down; Tune's per-trial file loggers are off (the records go to
``trials.jsonl``). Failed trials are retried (``FailureConfig(max_failures)``); a trial that
still fails ends the search with its error.

Ray is imported here, lazily, and nowhere else in searchkd (besides the sweep).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import uuid
from typing import Any, Callable, Generator, Sequence

from searchkd.errors import SearchKDError
from searchkd.orchestrate.local import MAX_FAILURES

__all__ = ["RayRunner", "connect", "split_chunks", "one_line_error"]

Records = list[dict[str, Any]]
#: evaluators built in this worker process, by runner token (kept across reused actors)
_EVALUATORS: dict[str, Any] = {}


def _ray_env(quiet: bool = False, debug: bool = False) -> None:
    """Settings that must be in place before ``import ray`` / ``ray.init``."""
    # no usage report: Ray's usage-stats module otherwise probes the cloud metadata endpoint
    # and phones home on every run (an explicit RAY_USAGE_STATS_ENABLED=1 is respected)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's console tables are noise here
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Tune's per-trial CSV/JSON/TensorBoard loggers: the records go to trials.jsonl, and the
    # loggers' file writes are part of the per-batch cost (benchmarks/ray_overhead.py --proxy params)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import logging

    # without those files the result grid warns that it cannot fetch each trial's metrics
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    if quiet:  # Ray's and Tune's banners ("Started a local Ray instance", token notices)
        logging.getLogger("ray").setLevel(logging.ERROR)
    # a failed trial's traceback: searchkd reports it in one line (whole with --debug)
    logging.getLogger("ray.tune").setLevel(logging.INFO if debug else logging.CRITICAL)


def one_line_error(err: BaseException | str | None) -> str:
    """A Ray/Tune error in one line: a searchkd error's own message, else the last line
    (at most 200 characters)."""
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [type(err).__name__]
    for ln in reversed(lines):
        if "SearchKDError: " in ln:
            return ln.split("SearchKDError: ", 1)[1][:200]
    return lines[-1][:200]


def _enable_token_auth_if_available() -> None:
    # Ray 2.60 turns token auth on for a cluster it finds itself (auto) but not for an
    # explicit HOST:PORT, so joining a `ray start --head` cluster by address failed after
    # 20 s of InvalidAuthToken warnings; the token `ray start` saved (~/.ray/auth_token or
    # RAY_AUTH_TOKEN[_PATH]) is used the same way for both
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:  # another Ray version: its own defaults
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def connect(address: str | None, *, num_cpus: int | None = None, quiet: bool = False, debug: bool = False) -> bool:
    """Make sure Ray is initialised; True when this call started it (and should shut it down).

    ``address`` None: the cluster in ``RAY_ADDRESS`` when that is set (the state of a cluster
    node's job), else a private local Ray (``num_cpus`` default: every CPU, dashboard off,
    usage stats off, advertised on 127.0.0.1), whatever other Ray a ``ray start`` left on
    this machine. ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` join a running cluster. A
    cluster that cannot be joined is a :class:`SearchKDError` with a one-line message.
    """
    _ray_env(quiet, debug)
    import logging

    import ray

    if ray.is_initialized():
        return False
    source = ""
    if address is None and os.environ.get("RAY_ADDRESS"):
        address, source = os.environ["RAY_ADDRESS"], " (from RAY_ADDRESS)"
    level = logging.ERROR if quiet else logging.INFO
    if address is None:
        # address="local": a new Ray of our own; without it ray.init joins whatever cluster
        # RAY_ADDRESS or /tmp/ray/ray_current_cluster names and refuses num_cpus
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, logging_level=level, _node_ip_address="127.0.0.1")
        return True
    if address not in ("auto", "local"):
        _check_reachable(address, source)
        _enable_token_auth_if_available()
    try:
        ray.init(address=address, log_to_driver=False, logging_level=level)
    except Exception as e:  # ConnectionError, RuntimeError, grpc errors … all mean "no cluster there"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        hint = ("; the cluster uses token authentication: run on a node of the cluster (its token is in "
                "~/.ray/auth_token), or set RAY_AUTH_TOKEN" if "auth" in str(e).lower() else "")
        raise SearchKDError(f"cannot connect to the Ray cluster at {address!r}{source}: {first}{hint}") from None
    return True


def _check_reachable(address: str, source: str = "", timeout: float = 5.0) -> None:
    client = address.startswith("ray://")
    hostport = address[len("ray://"):] if client else address
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, ("10001" if client else "6379")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        fix = "unset RAY_ADDRESS to start a local Ray, or" if source else ""
        raise SearchKDError(f"cannot reach the Ray cluster at {address!r}{source} ({e}); {fix} start one with "
                            "`ray start --head` or pass --ray-address auto on a cluster node") from None


def split_chunks(items: Sequence[str], n: int) -> list[list[str]]:
    """``items`` in at most ``n`` contiguous chunks of near-equal size (order kept)."""
    n = max(1, min(n, len(items)))
    k, r = divmod(len(items), n)
    out, start = [], 0
    for j in range(n):
        end = start + k + (1 if j < r else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def set_trial_threads(cpus: float) -> None:
    """A Ray trial computes with the CPUs it was given: torch's intra-op threads = its CPUs."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(max(1, int(cpus)))


def _evaluate_chunk(config: dict[str, Any], factory: Callable[[], Any], token: str, cpus: float = 1) -> None:
    """The Tune trainable: evaluate one chunk and report its records as JSON."""
    from ray import tune

    set_trial_threads(cpus)

    evaluate = _EVALUATORS.get(token)
    if evaluate is None:
        _EVALUATORS.clear()  # one search's evaluator at a time per worker
        evaluate = _EVALUATORS[token] = factory()
    records = list(evaluate(list(config["archs"])))
    tune.report({"records": json.dumps(records), "n": len(records)})


def _call_trial(config: dict[str, Any], fn: Callable[..., Any], args: tuple[Any, ...], cpus: float = 1) -> None:
    """The Tune trainable of :meth:`RayRunner.run_once`: one call, its JSON result reported."""
    from ray import tune

    set_trial_threads(cpus)

    tune.report({"value": json.dumps(fn(*args))})


class RayRunner:
    """Evaluates the driver's batches as Ray Tune trials (one trial per chunk of a batch).

    Args:
        factory: ``factory()`` → ``evaluate(archs) -> records``; pickled to the workers.
        address: an existing cluster, or None for a local Ray.
        cpus_per_trial, gpus_per_trial: resources of one trial.
        max_failures: retries of a failed trial.
        parallel: chunks per batch (default: how many trials the cluster fits at once).
        quiet: no Ray or Tune banners.
    """

    def __init__(self, factory: Callable[[], Any], *, address: str | None = None, cpus_per_trial: float = 1,
                 gpus_per_trial: float = 0, max_failures: int = MAX_FAILURES, parallel: int | None = None,
                 quiet: bool = False) -> None:
        if cpus_per_trial <= 0 or gpus_per_trial < 0:
            raise SearchKDError(f"cpus_per_trial must be > 0 and gpus_per_trial ≥ 0 (got {cpus_per_trial}, {gpus_per_trial})")
        self.factory = factory
        self._storage = ""
        self._started = connect(address, quiet=quiet)
        try:  # a failed setup shuts down the Ray this runner started (a caller's Ray stays up)
            self._setup(cpus_per_trial, gpus_per_trial, max_failures, parallel)
        except BaseException:
            self.close()
            raise

    def _setup(self, cpus_per_trial: float, gpus_per_trial: float, max_failures: int, parallel: int | None) -> None:
        import ray

        res = ray.cluster_resources()
        fits = int(res.get("CPU", 1) // cpus_per_trial)
        if gpus_per_trial > 0:
            fits = min(fits, int(res.get("GPU", 0) // gpus_per_trial))
            if fits < 1:
                raise SearchKDError(f"gpus_per_trial={gpus_per_trial} but the Ray cluster has {res.get('GPU', 0)} GPUs")
        self.parallel = max(1, parallel or fits)
        self.resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
        self.max_failures = max_failures
        self.token = uuid.uuid4().hex
        self._storage = tempfile.mkdtemp(prefix="searchkd-ray-")

    def drive(self, steps: Generator[list[str], Records, Any]) -> Any:
        """Run the driver loop to its end with Tune evaluating each batch; its return value."""
        from ray import tune

        searcher = _step_searcher(steps, self.parallel)
        trainable = tune.with_resources(
            tune.with_parameters(_evaluate_chunk, factory=self.factory, token=self.token, cpus=self.resources["cpu"]),
            self.resources)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, reuse_actors=True,
                                        max_concurrent_trials=self.parallel, trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(storage_path=self._storage, name="search", verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=self.max_failures)),
        )
        results = tuner.fit()
        if searcher.error is not None:
            raise searcher.error
        if not searcher.done:
            errors = [r.error for r in results if r.error is not None]
            err = errors[0] if errors else None
            if isinstance(err, SearchKDError) or "SearchKDError" in str(err):
                raise SearchKDError(one_line_error(err))
            raise RuntimeError(f"a Ray Tune trial failed after {self.max_failures} retries: {one_line_error(err)}")
        return searcher.value

    def run_once(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as one Tune trial with this runner's resources (a supernet's training,
        with ``gpus_per_trial``); its result must be JSON-friendly and comes back through JSON."""
        from ray import tune

        trainable = tune.with_resources(tune.with_parameters(_call_trial, fn=fn, args=args, cpus=self.resources["cpu"]),
                                        self.resources)
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(num_samples=1, trial_dirname_creator=_trial_dirname),
                           run_config=tune.RunConfig(storage_path=self._storage, name=f"once-{uuid.uuid4().hex[:8]}",
                                                     verbose=0, failure_config=tune.FailureConfig(max_failures=self.max_failures)))
        result = tuner.fit()[0]
        if result.error is not None:
            err = result.error
            if isinstance(err, SearchKDError) or "SearchKDError" in str(err):
                raise SearchKDError(one_line_error(err))
            raise RuntimeError(f"a Ray Tune trial failed after {self.max_failures} retries: {one_line_error(err)}")
        return json.loads(result.metrics["value"])

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        if self._storage:
            shutil.rmtree(self._storage, ignore_errors=True)
            self._storage = ""


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _step_searcher(steps: Generator[list[str], Records, Any], parallel: int) -> Any:
    from ray.tune.search import Searcher

    class _StepSearcher(Searcher):
        """Feeds the driver loop's batches to Tune as chunk trials; sends back the records."""

        def __init__(self, steps: Generator[list[str], Records, Any], parallel: int) -> None:
            super().__init__(metric="n", mode="max")
            self._steps = steps
            self._parallel = parallel
            self.done = False
            self.value: Any = None
            self.error: BaseException | None = None
            self._stop = False
            self._queue: list[tuple[int, list[str]]] = []
            self._running: dict[str, int] = {}
            self._results: dict[int, Records] = {}
            self._n_chunks = 0
            self._advance(None)

        def _advance(self, records: Records | None) -> None:
            try:
                batch = next(self._steps) if records is None else self._steps.send(records)
            except StopIteration as stop:
                self.done, self.value = True, stop.value
                return
            except BaseException as e:  # re-raised by the runner after Tune stops
                self.error = e
                return
            chunks = split_chunks(batch, self._parallel)
            self._queue = list(enumerate(chunks))
            self._n_chunks = len(chunks)
            self._results = {}

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            if self.done or self.error is not None or self._stop:
                return Searcher.FINISHED
            if not self._queue:
                return None  # waiting for the batch's other chunks
            k, chunk = self._queue.pop(0)
            self._running[trial_id] = k
            return {"archs": chunk}

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            # the records come with the trial's one report: the next batch is asked for now,
            # while Tune is still winding the trial down, not after it has completed
            if "records" in result:
                self._take(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            if trial_id not in self._running or self.done or self.error is not None:
                return  # its records were taken from its report (or the search is over)
            if error or result is None or "records" not in result:
                self._running.pop(trial_id, None)
                # the runner raises the trial's error once Tune has stopped
                self.error = None if error else RuntimeError(f"trial {trial_id} reported no records")
                self._queue = []
                self._stop = True
                return
            self._take(trial_id, result)

        def _take(self, trial_id: str, result: dict[str, Any]) -> None:
            k = self._running.pop(trial_id, None)
            if k is None or self.done or self.error is not None:
                return
            self._results[k] = json.loads(result["records"])
            if len(self._results) == self._n_chunks:
                self._advance([r for j in range(self._n_chunks) for r in self._results[j]])

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its search algorithm for experiment restore; a generator cannot be
            # pickled, and a restore goes through the trials log anyway
            return {k: v for k, v in self.__dict__.items() if k != "_steps"}

        def save(self, checkpoint_path: str) -> None:  # the trials log is the checkpoint
            pass

        def restore(self, checkpoint_path: str) -> None:
            pass

    return _StepSearcher(steps, parallel)
