"""Scoring BERT students of a text space: the trained SuperLM as a score source.

AutoDistil (Xu et al. 2022) ranks the subnets of a weight-sharing SuperLM, trained once by
self-attention relation distillation from the teacher, by their held-out relation loss
inside it (forward only, no retraining). Here that loss is a proxy, ``superlm`` (its
negative, so higher is better like every proxy), that any ask/tell strategy can search:
``autodistil`` (every subnet in a seeded random order, the paper's exhaustive search),
evolution, or NSGA-II with ``--objectives superlm,params``.

The text data is split once per search (:func:`text_split`): the SuperLM trains on one part
and scores on the held-out part, so a subnet is never ranked on the text it was trained on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from searchkd.data.text import HELD_OUT, text_split  # noqa: F401  (re-exported: the split of a search)
from searchkd.errors import SearchKDError
from searchkd.teachers.text import text_teacher as _teacher  # noqa: F401

__all__ = ["TEXT_PROXIES", "DEFAULT_SUPERNET_STEPS", "HELD_OUT", "text_split", "superlm_config", "ensure_superlm",
           "TextScorer", "check_text_config", "export_search_best"]

#: the proxies a text (BERT) student can be scored with: the SuperLM, two training-free
#: teacher-aware ones (DisWOT's relation term on sentence embeddings, the capacity-gap law)
#: and size
TEXT_PROXIES = ("superlm", "diswot_relation", "capacity_gap", "params", "flops")
_NEEDS_TEACHER = ("superlm", "diswot_relation", "capacity_gap")
#: SuperLM training steps when the search gives none (AutoDistil trains 10k on GPUs; a CPU default)
DEFAULT_SUPERNET_STEPS = 300
#: the SuperLM's peak learning rate when the search gives none, chosen on what its students are
#: for: a task. Two SuperLMs cut from MiniLM, 300 steps of 16 rows each; their best students
#: (unconstrained and ≤ 6 M) fine-tuned on pydoc-topics and scored on a validation quarter of its
#: training part: mean .743 at 2e-4 vs .729 at 1e-3 (benchmarks/out/bert_superlm_lr.json). The
#: relation loss after 20 steps had preferred 1e-3 (bert_recipe.json: 2.20 / 2.05 / 1.74 at
#: 4e-5 / 2e-4 / 1e-3), but at 300 steps 1e-3 moves the small subnets away from what a task
#: needs. AutoDistil's own (GPU, 128 × 16 sequences a step) is ``--supernet-lr 4e-5``.
DEFAULT_SUPERNET_LR = 2e-4


def check_text_proxies(proxies: Sequence[str], space: Any) -> None:
    """:class:`SearchKDError` for a proxy that does not score text students."""
    bad = [p for p in proxies if p not in TEXT_PROXIES]
    if bad:
        raise SearchKDError(f"proxy {bad[0]!r} does not score text students of {space.name} "
                            f"(text proxies: {', '.join(TEXT_PROXIES)})")


def check_text_config(config: Any, space: Any) -> None:
    """Bad input of a text search, before anything is written."""
    check_text_proxies(config.proxies, space)
    if config.teacher is None and not getattr(space, "default_teacher", ""):
        from searchkd.teachers.text import no_default_teacher

        raise no_default_teacher(space)
    if config.supernet_steps is not None and (not isinstance(config.supernet_steps, int) or config.supernet_steps < 1):
        raise SearchKDError(f"--supernet-steps must be a positive integer, got {config.supernet_steps!r}")
    init = config.supernet_init
    if init is not None and init not in ("teacher", "random") and not str(init).startswith("hf:"):
        raise SearchKDError(f"--init must be teacher, random or hf:DIR, got {init!r}")
    if init is not None and str(init).startswith("hf:"):
        from searchkd.teachers.text import check_hf_dir

        check_hf_dir(str(init)[3:])
    lr = config.supernet_lr
    if lr is not None and not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < 1):
        raise SearchKDError(f"--supernet-lr must be a learning rate in (0, 1), got {lr!r}")
    if config.supernet is not None and not (Path(config.supernet) / "config.json").is_file():
        raise SearchKDError(f"--supernet {config.supernet}: no SuperLM checkpoint there (config.json, checkpoint.pt)")
    from searchkd.data.text import is_text_data

    if not is_text_data(config.data):
        raise SearchKDError(f"{space.name} students need text data (embedded-text or text:PATH), got {config.data!r}")


def split_seed(config: Any) -> int:
    """The seed of a search's text split: the proxies' seed (``proxy_seed``, else ``seed``), as
    the scorer's :class:`~searchkd.evaluate.EvalConfig` carries it, so that the SuperLM trains
    and scores on the two sides of one split."""
    return config.seed if getattr(config, "proxy_seed", None) is None else config.proxy_seed


def _qkv(teacher: Any) -> Any:
    def qkv(ids: Any, mask: Any) -> tuple[Any, Any, Any]:
        f = teacher.features(ids, mask)
        return f.q, f.k, f.v

    return qkv


def superlm_config(config: Any, teacher: Any, init: str = "random") -> Any:
    """The SuperLM training settings of a search config (``init``: the resolved start)."""
    from searchkd.supernets.superlm import SuperLMConfig

    steps = config.supernet_steps or DEFAULT_SUPERNET_STEPS
    lr = getattr(config, "supernet_lr", None) or DEFAULT_SUPERNET_LR
    return SuperLMConfig(steps=steps, batch_size=config.batch_size, seed=config.seed, lr=float(lr), init=init,
                         relation_heads=teacher.info.heads, checkpoint_every=max(1, min(100, steps // 4)))


def ensure_superlm(config: Any, out_dir: str | Path, progress: bool | None = None) -> tuple[str, dict[str, Any]]:
    """The SuperLM directory a search scores with: ``config.supernet`` (checked against the
    sub-space and teacher), else one trained (or resumed) in ``out_dir/supernet``.

    Returns the directory and a summary (step, tokens/s, seconds, where it came from)."""
    from searchkd.devices import resolve_device
    from searchkd.supernets.superlm import SuperLM

    device = resolve_device(config.device)
    from searchkd.spaces import get_space

    teacher = _teacher(config.teacher, config.teacher_weights, device, get_space(config.space))
    train, _ = text_split(config.data, teacher, split_seed(config))
    if config.supernet is not None:
        lm = load_superlm(config.supernet, teacher, config.space, train, device)
        return str(Path(config.supernet).resolve()), {"source": "reused", "step": lm.step}
    target = Path(out_dir).resolve() / "supernet"
    import warnings

    from searchkd.supernets.superlm_init import resolve_init

    label, pretrained, note = resolve_init(getattr(config, "supernet_init", None), teacher, get_space(config.space))
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)
    lm = SuperLM(config.space, _qkv(teacher), teacher=teacher.info.id, config=superlm_config(config, teacher, label),
                 device=device, pretrained=pretrained)
    t0 = time.perf_counter()
    ids, mask = train.tensors(range(len(train)))
    stats = lm.train(ids, mask, out_dir=target, progress=progress)
    return str(target), {"source": "trained", "step": stats["step"], "tokens_per_s": stats["tokens_per_s"],
                         "seconds": time.perf_counter() - t0, "train_rows": len(train)}


def load_superlm(path: str, teacher: Any, space: str, train: Any, device: Any) -> Any:
    """A trained SuperLM (``--supernet DIR`` of ``search`` or ``score``), refused in one line when it
    was trained for another sub-space, teacher, or on other rows than ``train`` (the held-out
    rows it scores on would then include rows it trained on)."""
    from searchkd.io import read_json
    from searchkd.supernets.superlm import SuperLM, _fingerprint

    lm = SuperLM.load(path, _qkv(teacher), teacher=teacher.info.id, device=device)
    if lm.space.name != space:
        raise SearchKDError(f"--supernet {path} was trained for {lm.space.name}, not {space}")
    if read_json(Path(path) / "config.json").get("data") != _fingerprint(*train.tensors(range(len(train)))):
        raise SearchKDError(f"--supernet {path} was trained on other text or another train/held-out "
                            "split (--data, --seed): its scores would be measured on rows it trained on")
    return lm


class TextScorer:
    """Scores BERT students of one text space.

    * ``superlm``: −held-out relation loss inside the SuperLM at ``eval_config.supernet``
      (AutoDistil; forward only).
    * ``diswot_relation``: DisWOT's relation term (Dong et al. 2023) on text, training-free:
      the randomly initialised student (the students' seed) and the teacher embed one batch
      of held-out rows; each side's B×B Gram of masked-mean sentence embeddings, rows
      L2-normalised; −‖G_t − G_s‖²_F / B². Sentence embeddings stand in for the CNN's feature
      maps, so teacher and student widths need not match.
    * ``capacity_gap``: the capacity-gap law (Zhang et al. 2023) against the teacher's size.
    * ``params`` / ``flops``: the space's exact cost (millions; FLOPs per token).
    """

    def __init__(self, config: Any, space: Any) -> None:
        from searchkd.devices import resolve_device

        self.config, self.space = config, space
        self.seconds: dict[str, float] = {}
        self.nonfinite: dict[str, int] = {}
        self.lm = None
        self.device = resolve_device(config.device)
        if not any(p in _NEEDS_TEACHER for p in config.proxies):
            return
        teacher = _teacher(config.teacher, config.teacher_weights, self.device, space)
        self.teacher_params = teacher.info.params
        train, held = text_split(config.data, teacher, config.seed)
        if "superlm" in config.proxies:
            if config.supernet is None:
                raise SearchKDError("the superlm proxy needs a trained SuperLM: --supernet DIR (a search's OUT/supernet) "
                                    "for score, or a search trains one")
            self.lm = load_superlm(config.supernet, teacher, space.name, train, self.device)
            self.held = held.tensors(range(len(held)), self.device)
        if "diswot_relation" in config.proxies:
            from searchkd.proxies.diswot import relation_gram

            self.batch = held.batch(min(config.batch_size, len(held)), seed=config.seed, device=self.device)
            self.teacher_gram = relation_gram(teacher.features(*self.batch).embedding)

    def _relation(self, arch: str) -> float:
        import torch

        from searchkd.proxies.diswot import relation_gram
        from searchkd.teachers.text import mean_pool

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)  # the students' stream (see searchkd.seeds)
            net = self.space.build(arch, num_classes=2).to(self.device).eval()
        with torch.no_grad():
            emb = mean_pool(net.forward_features(*self.batch), self.batch[1])
        g = relation_gram(emb)
        return -float(((self.teacher_gram - g) ** 2).sum()) / g.shape[0] ** 2

    def score_archs(self, archs: Sequence[str]) -> list[dict[str, Any]]:
        from searchkd.proxies.capacity_gap import gap_penalty

        t0 = time.perf_counter()
        losses = self.lm.score_many(list(archs), *self.held) if self.lm is not None else None
        batch = time.perf_counter() - t0  # the SuperLM scores the batch at once: each arch gets an equal share
        if losses is not None:
            self.seconds["superlm"] = self.seconds.get("superlm", 0.0) + batch
        out = []
        for k, arch in enumerate(archs):
            t1 = time.perf_counter()
            cost = self.space.cost(arch)
            scores: dict[str, float] = {}
            for p in self.config.proxies:
                t2 = time.perf_counter()
                if p == "superlm":
                    scores[p] = -float(losses[k])
                elif p == "diswot_relation":
                    scores[p] = self._relation(arch)
                elif p == "capacity_gap":
                    scores[p] = gap_penalty(self.teacher_params, cost["params"] * 1e6)
                else:
                    scores[p] = float(cost[p])
                if p != "superlm":
                    self.seconds[p] = self.seconds.get(p, 0.0) + time.perf_counter() - t2
            share = 0.0 if losses is None else batch / len(archs)
            out.append({"arch": arch, "scores": scores, **cost, "seconds": time.perf_counter() - t1 + share})
        return out


def export_search_best(config: Any, supernet: str, arch: str, out_dir: str | Path) -> Path:
    """Export the chosen student, with the weights it inherits from the SuperLM, as a Hugging
    Face directory ``out_dir/student`` (with the teacher's tokenizer); an existing export of
    the same arch is kept (a resumed search)."""
    import json

    from searchkd.hf.export import export_student
    from searchkd.supernets.superlm import SuperLM
    from searchkd.teachers.text import teacher_dir
    from searchkd.teachers import resolve_teacher

    target = Path(out_dir) / "student"
    marker = target / "searchkd.json"
    try:
        same = marker.is_file() and json.loads(marker.read_text()).get("arch") == arch
    except (OSError, ValueError, AttributeError):
        same = False  # a damaged export is replaced
    if same:
        return target
    if target.exists():
        import shutil

        shutil.rmtree(target)  # an export of an earlier best (a search extended by --resume)
    teacher = _teacher(config.teacher, config.teacher_weights, "cpu")
    lm = SuperLM.load(supernet, None, teacher=teacher.info.id, device="cpu")
    return export_student(lm, arch, target, space=config.space, tokenizer_dir=teacher_dir(resolve_teacher(config.teacher or "minilm-l6")),
                          teacher_id=teacher.info.id)
