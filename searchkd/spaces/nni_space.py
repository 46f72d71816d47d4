"""NNI 3.0 model spaces as searchkd spaces (Zhang et al., "Retiarii: A Deep Learning
Exploratory-Training Framework", OSDI 2020; NNI 3.0's ``ModelSpace`` API).

Named ``nni:MODULE:ATTR`` (or ``nni:path/to/file.py:ATTR``), where ``ATTR`` is a
``nni.nas.nn.pytorch.ModelSpace`` subclass or a zero-argument function returning one.
Only NNI's model-space building blocks are used (``nni.mutable``, ``nni.nas.nn.pytorch``):
no NNI experiment, engine, strategy or web UI is ever started.

* **Choices.** The space's labels are ``model_space.simplify()``: discrete ``nni.choice``
  values, ``LayerChoice``, ``InputChoice``, a ``Repeat`` depth, ``Mutable*`` widths.
  A continuous mutable (``nni.uniform`` …) is refused.
* **Conditional labels.** A label can matter only for some values of others (the op of
  the third block of a ``Repeat`` whose depth is 2). Which labels are *active* is what
  NNI's own ``check_contains`` reads for a sample. An arch holds its active labels only,
  so two samples that differ in inactive labels are one arch; ``validate`` drops inactive
  labels given to it and refuses a missing active one, an unknown label or a value that is
  not a choice.
* **Arch string.** Canonical compact JSON of the active labels, keys sorted, e.g.
  ``{"depth":2,"op0":"conv3x3","op1":"skip","width":16}``.
* **Encoding.** One integer per label (the index of its value), labels sorted; inactive
  labels encode as 0 and are ignored by ``decode``, so ``decode(encode(a)) == a`` and
  every vector decodes to a valid arch (several vectors may give the same arch).
* **Sampling** follows NNI's distribution (each active label drawn by its own
  ``random()``, with its weights), not a uniform draw over distinct archs. ``mutate``
  changes one active label to another value, then draws the labels that this makes
  active and drops those it makes inactive.
* **Build** re-runs the space's constructor under NNI's ``model_context(sample)``, the way
  NNI creates a fixed model (the same network as ``model_space.freeze(sample)``, with fresh
  weights from the caller's torch RNG); a constructor taking ``num_classes`` gets it. The
  network is wrapped so proxies see ``classifier`` (its last ``nn.Linear``) and
  ``forward_features`` (that layer's input); ``forward`` is the model's own.
* **Teacher.** ``resnet56`` by default (built with the data's class count); any arch of
  the space is a teacher as ``nni:MODULE:ATTR:ARCH``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.spaces._nni_spec import absolute_spec, import_nni, load_factory, split_teacher_spec, takes_num_classes
from searchkd.spaces.base import SearchSpace, as_rng, count_cost

__all__ = ["NNISpace", "import_nni", "split_teacher_spec", "absolute_spec"]

#: spaces with at most this many raw label combinations are enumerated for an exact size
ENUMERATE_LIMIT = 20_000
MAX_VALUES = 4096


class _Reads(dict):
    """A sample that records which labels are looked up (NNI's check_contains reads the
    labels a sample's network depends on, and no others)."""

    def __init__(self, sample: dict[str, Any]) -> None:
        super().__init__(sample)
        self.read: list[str] = []
        self.missing: list[str] = []

    def __contains__(self, key: object) -> bool:
        found = dict.__contains__(self, key)
        (self.read if found else self.missing).append(key)  # type: ignore[arg-type]
        return found

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return dict.__getitem__(self, key)


class NNISpace(SearchSpace):
    """An NNI 3.0 ``ModelSpace`` as a searchkd space (see the module docstring).

    Args:
        factory: a ``ModelSpace`` subclass or a zero-argument function returning one.
        name: the space's name, ``nni:MODULE:ATTR``, which rebuilds it in other processes
            (default: from the factory's module and name).
    """

    default_teacher = "resnet56"

    def __init__(self, factory: Callable[..., Any], name: str | None = None) -> None:
        import torch

        nas_nn = import_nni()
        from nni.mutable import Categorical, CategoricalMultiple, Numerical

        if name is None:
            name = f"nni:{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"
        self.name = name
        self.description = f"NNI model space {name}"
        self.factory = factory
        with torch.random.fork_rng():  # the caller's torch RNG stays untouched
            torch.manual_seed(0)
            try:
                space = factory()
            except Exception as e:
                raise SearchKDError(f"{name}: building the model space failed ({type(e).__name__}: {e})") from None
        if not isinstance(space, nas_nn.ModelSpace):
            raise SearchKDError(f"{name}: expected an nni.nas.nn.pytorch.ModelSpace, got {type(space).__name__}")
        self.model_space = space
        mutables = space.simplify()
        if not mutables:
            raise SearchKDError(f"{name}: the model space has no choices to search")
        self.labels: list[str] = sorted(mutables)
        self.mutables = mutables
        self.values: dict[str, list[Any]] = {}
        self._index: dict[str, dict[str, int]] = {}  # label → canonical JSON of a value → index
        self._items: dict[str, list[Any]] = {}  # label of a CategoricalMultiple → its items
        for label in self.labels:
            m = mutables[label]
            if isinstance(m, Categorical):
                values = list(m.values)
            elif isinstance(m, CategoricalMultiple):
                self._items[label] = list(m.values)
                values = _take(m.grid(), MAX_VALUES + 1)
            else:
                kind = "continuous" if isinstance(m, Numerical) else "unsupported"
                raise SearchKDError(f"{name}: label {label!r} is {kind} ({type(m).__name__}); "
                                    "searchkd searches discrete choices only (nni.choice, LayerChoice, InputChoice, Repeat)")
            if len(values) > MAX_VALUES:
                raise SearchKDError(f"{name}: label {label!r} has more than {MAX_VALUES} values")
            self.values[label] = values
            self._index[label] = {_token(v, name, label): i for i, v in enumerate(values)}
        self._size: int | None = None
        self._costs: dict[str, dict[str, float]] = {}

    @classmethod
    def from_spec(cls, spec: str) -> "NNISpace":
        """The space ``nni:MODULE:ATTR`` names."""
        return cls(load_factory(spec), name=spec)

    # --- samples ----------------------------------------------------------------

    def _active(self, sample: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """(the active labels of ``sample``, the first active label it lacks or None)."""
        from nni.mutable import SampleMissingError

        reads = _Reads(sample)
        err = self.model_space.check_contains(reads)
        missing = next((k for k in reads.missing if k in self.values), None)
        if err is not None and not (isinstance(err, SampleMissingError) and missing is not None):
            raise SearchKDError(f"{self.name}: invalid sample ({str(err).splitlines()[0][:200]})")
        read = set(reads.read)
        return {k: sample[k] for k in self.labels if k in read and k in sample}, (missing if err is not None else None)

    def _complete(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Draw every active label ``sample`` lacks (NNI's ``random``), drop the inactive ones."""
        state = np.random.RandomState(int(rng.integers(2**32)))
        sample = dict(sample)
        while True:
            active, missing = self._active(sample)
            if missing is None:
                return active
            sample[missing] = self.mutables[missing].random({}, state)

    def _format(self, active: dict[str, Any]) -> str:
        return json.dumps({k: self.values[k][self._lookup(k, v)] for k, v in active.items()},
                          sort_keys=True, separators=(",", ":"))

    def _lookup(self, label: str, value: Any) -> int:
        items = self._items.get(label)
        if items is not None and isinstance(value, (list, tuple)):  # a set of inputs, in any order
            value = sorted(value, key=lambda x: items.index(x) if x in items else -1)
        i = self._index[label].get(_token(value, self.name, label))
        if i is None:
            shown = ", ".join(_token(v, self.name, label) for v in self.values[label][:12])
            raise SearchKDError(f"{self.name}: {value!r} is not a value of {label!r} (values: {shown})")
        return i

    def _parse(self, arch: str) -> dict[str, Any]:
        """The active labels of an arch string (validated)."""
        if not isinstance(arch, str):
            raise SearchKDError(f"{self.name}: an arch is a JSON string, got {type(arch).__name__}")
        try:
            given = json.loads(arch)
        except ValueError:
            given = None
        if not isinstance(given, dict):
            example = self.decode([0] * len(self.labels))
            raise SearchKDError(f"{self.name}: malformed arch {arch!r}: expected a JSON object of label: value, e.g. {example}")
        unknown = sorted(set(given) - set(self.values))
        if unknown:
            raise SearchKDError(f"{self.name}: unknown label {unknown[0]!r} in {arch!r} (labels: {', '.join(self.labels)})")
        sample = {k: self.values[k][self._lookup(k, v)] for k, v in given.items()}
        active, missing = self._active(sample)
        if missing is not None:
            raise SearchKDError(f"{self.name}: arch {arch!r} lacks label {missing!r}, which these choices make active")
        return active

    def sample(self, rng: np.random.Generator | int | None = None) -> str:
        """An arch drawn by NNI's distribution (each active label by its own ``random``)."""
        return self._format(self._complete({}, as_rng(rng)))

    def mutate(self, arch: str, rng: np.random.Generator | int | None = None) -> str:
        """One active label changed to another of its values; labels this makes active are
        drawn, those it makes inactive dropped."""
        rng = as_rng(rng)
        active = self._parse(arch)
        labels = [k for k in active if len(self.values[k]) > 1]
        if not labels:
            raise SearchKDError(f"{self.name}: {arch} has no choice to mutate")
        label = labels[int(rng.integers(len(labels)))]
        old = self._lookup(label, active[label])
        new = int(rng.integers(len(self.values[label]) - 1))
        active[label] = self.values[label][new if new < old else new + 1]
        return self._format(self._complete(active, rng))

    def validate(self, arch: str) -> str:
        return self._format(self._parse(arch))

    # --- encoding ---------------------------------------------------------------

    def bounds(self) -> list[int]:
        return [len(self.values[k]) for k in self.labels]

    def encode(self, arch: str) -> list[int]:
        active = self._parse(arch)
        return [self._lookup(k, active[k]) if k in active else 0 for k in self.labels]

    def decode(self, vec: Any) -> str:
        full = {k: self.values[k][i] for k, i in zip(self.labels, self._check_vec(vec))}
        return self._format(self._active(full)[0])

    def all_archs(self) -> list[str]:
        """Every distinct arch (active labels only), depth-first in label-read order."""
        out: list[str] = []

        def walk(sample: dict[str, Any]) -> None:
            active, missing = self._active(sample)
            if missing is None:
                out.append(self._format(active))
                return
            for v in self.values[missing]:
                walk({**sample, missing: v})

        walk({})
        return out

    def size(self) -> int:
        """The number of distinct archs: exact up to :data:`ENUMERATE_LIMIT` raw
        combinations, beyond that their product (exact when no label is conditional)."""
        if self._size is None:
            raw = math.prod(self.bounds())
            self._size = len(self.all_archs()) if raw <= ENUMERATE_LIMIT else raw
        return self._size

    # --- networks ---------------------------------------------------------------

    def build(self, arch: str, num_classes: int | None = None) -> Any:
        """The fixed network of ``arch`` with fresh weights from the torch RNG, wrapped for
        the proxies (:class:`~searchkd.spaces._nni_net.NNIClassifier`). ``num_classes``
        None keeps the space's own class count; a different count than the network's is a
        :class:`SearchKDError` unless the space's constructor takes ``num_classes``."""
        from nni.nas.space import model_context

        from searchkd.spaces._nni_net import as_classifier

        active = self._parse(arch)
        sample = {**{k: self.values[k][0] for k in self.labels}, **active}  # inactive labels: never read
        kwargs = {"num_classes": num_classes} if num_classes is not None and takes_num_classes(self.factory) else {}
        try:
            with model_context(sample):
                model = self.factory(**kwargs)
        except SearchKDError:
            raise
        except Exception as e:
            raise SearchKDError(f"{self.name}: building {arch} failed ({type(e).__name__}: {str(e)[:200]})") from None
        return as_classifier(model, num_classes, self.name)

    def cost(self, arch: str) -> dict[str, float]:
        """Parameters and FLOPs (millions) of the built network, its own class count, 3×32×32."""
        import torch

        arch = self.validate(arch)
        if arch not in self._costs:
            with torch.random.fork_rng():
                net = self.build(arch)
                try:
                    self._costs[arch] = count_cost(net)
                except (RuntimeError, ValueError, TypeError) as e:
                    first = (str(e).strip().splitlines() or [""])[0][:200]
                    raise SearchKDError(f"{self.name}: the network of {arch} fails on a 3×32×32 image "
                                        f"({type(e).__name__}: {first})") from None
        return dict(self._costs[arch])


def _take(it: Any, n: int) -> list[Any]:
    out = []
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out


def _token(value: Any, name: str, label: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise SearchKDError(f"{name}: label {label!r} has a value that is not JSON data ({value!r}); "
                            "use str/int/float/bool values (or a LayerChoice dict keyed by name)") from None
