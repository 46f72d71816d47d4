"""AutoDistil's SuperLM (Xu et al., NeurIPS 2022, §3.2): one weight-sharing BERT per
sub-space, built at the sub-space's largest shape, trained task-agnostically by distilling
the teacher's last-layer self-attention relations (MiniLMv2, Wang et al., ACL Findings 2021)
into sandwich-sampled subnets; held-out relation loss then ranks the subnets.

Relations: the last layer's Q (and K, V), B×T×width, is cut into ``R`` relation heads of
``d_r = width // R`` dims (the first ``R·d_r`` dims, as AutoDistil's code does when the width
does not divide; MiniLMv2 assumes it does), and ``Q_a Q_aᵀ / √d_r`` per head; teacher and
student use the same ``R`` with their own ``d_r``. Two losses, summed over Q-Q, K-K, V-V:

* ``"minilmv2"`` (the paper's): KL(teacher ‖ student) of the row-softmaxed relations over the
  non-padding keys, averaged over relation heads and non-padding query tokens of the batch. The
  default: with it the SuperLM ranks 8 Tiny subnets as their standalone distillation does at
  Kendall τ .857, against .143 with the MSE below (``benchmarks/bert_fidelity.py``, docs/benchmarks.md).
* ``"autodistil"`` (their released code, ``run_wiki_plus_book_NoAssist_RndSampl.py``): the
  mean squared error of the scaled relation scores themselves, no softmax. Their additive
  −10000 mask cancels in the difference, so they average over all T×T pairs; here the
  padding rows and columns are left out (the same value when nothing is padded).

Initialisation (AutoDistil's released code loads the SuperLM from the pretrained teacher's own
directory): ``pretrained=(state dict, shape)`` cuts the SuperLM from a pretrained BERT
(:mod:`searchkd.supernets.superlm_init`: evenly spaced layers, the first hidden units, heads
and FFN units, optionally importance-reordered); without it BERT's random initialisation
(``init="random"``). Subnets run evenly spaced layers and head-aligned Q/K/V
(:mod:`searchkd.spaces._bert_net`).

Training (AutoDistil's): each step takes the largest, the smallest and two other random
subnets, sums their losses into one backward, clips the gradient norm to 1 and makes one
AdamW step (weight decay off for biases and LayerNorms) under a linear warm-up/decay
schedule; defaults are their tiny-space run's (lr 4e-5, weight decay 0.01, no warm-up,
128 sequences a batch per device). bf16 autocast on CUDA only.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from searchkd.errors import SearchKDError, check_finite_loss, first_line
from searchkd.io import atomic_path, read_json, write_json
from searchkd.progress import Progress
from searchkd.spaces._bert_net import BertNet, extract
from searchkd.spaces.bert import BertArch, BertSpace, parse_arch

__all__ = ["SuperLM", "SuperLMConfig", "relation_loss", "relations", "RELATION_LOSSES"]

RELATION_LOSSES = ("minilmv2", "autodistil")
#: checkpoint format; /2: subnets run evenly spaced layers and head-aligned Q/K/V (searchkd.spaces._bert_net)
FORMAT = "searchkd-superlm/2"
TeacherQKV = Callable[[torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]


def relations(x: torch.Tensor, heads: int) -> torch.Tensor:
    """B×T×W → B×R×T×T: ``x_a x_aᵀ / √d_r`` over ``R = heads`` relation heads of ``W // R`` dims."""
    b, t, w = x.shape
    d = w // heads
    if d < 1:
        raise SearchKDError(f"relation distillation: width {w} cannot be cut into {heads} relation heads")
    x = x[..., :heads * d].reshape(b, t, heads, d).transpose(1, 2)
    return x @ x.transpose(-1, -2) / math.sqrt(d)


def relation_loss(teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor], attention_mask: torch.Tensor,
                  *, heads: int = 12, kind: str = "minilmv2") -> torch.Tensor:
    """The relation distillation loss summed over the pairs of ``teacher`` and ``student``
    tensors (their (q, k, v), each B×T×width), see the module docstring; a float32 scalar."""
    if kind not in RELATION_LOSSES:
        raise SearchKDError(f"unknown relation loss {kind!r} (known: {', '.join(RELATION_LOSSES)})")
    keep = attention_mask.bool()
    keys = keep[:, None, None, :]
    total = torch.zeros((), device=attention_mask.device)
    for t, s in zip(teacher, student, strict=True):
        rt, rs = relations(t.float(), heads), relations(s.float(), heads)
        if kind == "minilmv2":
            low = torch.finfo(torch.float32).min  # not -inf: 0·(-inf − -inf) would be NaN
            lt = rt.masked_fill(~keys, low).log_softmax(-1)
            ls = rs.masked_fill(~keys, low).log_softmax(-1)
            kl = (lt.exp() * (lt - ls)).sum(-1)  # B×R×T; padding keys have probability 0
            total = total + (kl * keep[:, None, :]).sum() / (keep.sum() * heads)
        else:
            pairs = keys & keep[:, None, :, None]
            total = total + ((rs - rt) ** 2 * pairs).sum() / (pairs.sum() * heads)
    return total


@dataclass(frozen=True)
class SuperLMConfig:
    """Training settings; all but ``checkpoint_every`` must match to resume a checkpoint."""

    steps: int = 10_000
    batch_size: int = 128
    lr: float = 4e-5
    warmup_steps: int = 0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    loss: str = "minilmv2"
    relation_heads: int = 12
    dropout: float = 0.1
    seed: int = 0
    checkpoint_every: int = 1000
    amp: bool = True
    #: where the weights started: "random" (BERT's init), "teacher" or "hf:DIR" (cut from that
    #: pretrained model, :mod:`searchkd.supernets.superlm_init`); a label, the weights' fingerprint is checked too
    init: str = "random"
    #: sort heads and FFN neurons by importance before cutting (DynaBERT's reordering)
    reorder: bool = False
    #: how a subnet's heads are cut from the SuperLM's (:data:`~searchkd.spaces._bert_net.HEAD_SLICINGS`)
    head_slicing: str = "aligned"

    def __post_init__(self) -> None:
        from searchkd.spaces._bert_net import HEAD_SLICINGS

        if self.head_slicing not in HEAD_SLICINGS:
            raise SearchKDError(f"unknown head slicing {self.head_slicing!r} (known: {', '.join(HEAD_SLICINGS)})")
        if self.loss not in RELATION_LOSSES:
            raise SearchKDError(f"unknown relation loss {self.loss!r} (known: {', '.join(RELATION_LOSSES)})")
        if min(self.steps, self.batch_size, self.relation_heads) < 1 or self.warmup_steps < 0 or self.checkpoint_every < 0:
            raise SearchKDError(f"SuperLMConfig: steps, batch_size, relation_heads must be >= 1 and warmup_steps, "
                                f"checkpoint_every >= 0, got {self}")


def _lr_factor(step: int, *, warm: int, total: int) -> float:
    """Linear warm-up over ``warm`` steps, then linear decay to 0 at ``total`` (BERT's schedule)."""
    if step < warm:
        return step / warm
    return max(0.0, (total - step) / max(1, total - warm))


class SuperLM:
    """The weight-sharing BERT of one sub-space and its training.

    Args:
        space: a BERT space name (``bert-tiny`` …) or a :class:`BertSpace`.
        teacher_qkv: ``(input_ids, attention_mask) -> (q, k, v)``, the teacher's last layer
            (B×T×width each); needed to train and to score.
        teacher: an identifier of the teacher, recorded in checkpoints.

    A checkpoint directory holds ``config.json`` (sub-space, grid, vocabulary, teacher,
    settings, step, a fingerprint of the training data) and ``checkpoint.pt`` (model,
    optimizer, scheduler, RNG states, step; loadable with ``weights_only=True``), both
    replaced atomically. :meth:`train` continues from it and refuses one of another
    sub-space, teacher, settings or data; :meth:`load` reopens it to score with.
    """

    def __init__(self, space: str | BertSpace, teacher_qkv: TeacherQKV | None, *, teacher: str,
                 config: SuperLMConfig | None = None, device: str | torch.device | None = None,
                 pretrained: tuple[Any, Any] | None = None) -> None:
        if isinstance(space, str):
            from searchkd.spaces import get_space

            space = get_space(space)
        if not isinstance(space, BertSpace):
            raise SearchKDError(f"a SuperLM needs a BERT space, got {getattr(space, 'name', space)!r}")
        self.space, self.teacher_qkv, self.teacher = space, teacher_qkv, str(teacher)
        self.config = config or SuperLMConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())  # one RNG to save and restore
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.net = BertNet(replace(space.net_config(space.largest(), pooler=False, dropout=c.dropout),
                                       head_slicing=c.head_slicing))
        self.init_id: str | None = None  # fingerprint of the weights it started from, when not random
        if pretrained is not None:  # (state dict, BertShape) of a pretrained model to cut from
            from searchkd.supernets.superlm_init import cut_pretrained

            try:
                cut_pretrained(self.net, pretrained[0], pretrained[1], reorder=c.reorder)
            except ValueError as e:
                raise SearchKDError(f"SuperLM of {space.name}: {e}") from None
            state = self.net.state_dict()
            self.init_id = _fingerprint(*(state[k] for k in sorted(state)))
        self.net.to(self.device)
        no_decay = [p for n, p in self.net.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
        decay = [p for n, p in self.net.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=c.lr, eps=1e-8)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(_lr_factor, warm=c.warmup_steps, total=c.steps))
        self.step = 0
        self._rng: dict[str, Any] | None = None  # the dropout stream between calls of train()
        self._archs = [space.decode(v) for v in np.ndindex(*space.bounds())]

    @classmethod
    def standalone(cls, space: str | BertSpace, arch: str | BertArch, teacher_qkv: TeacherQKV | None, *,
                   teacher: str, config: SuperLMConfig | None = None, init: BertNet | None = None,
                   device: str | torch.device | None = None) -> "SuperLM":
        """A plain student ``arch`` of ``space`` trained by the same loop: a SuperLM over the
        one-arch sub-space ``{space.name}/{arch}`` (same vocabulary), whose only subnet is the
        whole net, so :meth:`train`, checkpoints, :meth:`score` and :meth:`load` serve it as is.

        Args:
            init: a :class:`BertNet` of exactly ``arch``'s shape to start from (e.g. the weights
                it inherits from a trained SuperLM, ``lm.extract(arch)``; a pooler is ignored);
                None: BERT's random initialisation, seeded by ``config.seed``. A checkpoint
                records a fingerprint of it and is resumed only from the same ``init``.
        """
        if isinstance(space, str):
            from searchkd.spaces import get_space

            space = get_space(space)
        if not isinstance(space, BertSpace):
            raise SearchKDError(f"a SuperLM needs a BERT space, got {getattr(space, 'name', space)!r}")
        a = arch if isinstance(arch, BertArch) else parse_arch(arch, space.name)
        one = BertSpace(layers=[a.layers], hidden=[a.hidden], heads=[a.heads], ratios=[a.ratio], name=f"{space.name}/{a}",
                        vocab_size=space.vocab_size, max_position=space.max_position, type_vocab=space.type_vocab)
        lm = cls(one, teacher_qkv, teacher=teacher, config=config, device=device)
        if init is not None:
            mine = lm.net.state_dict()
            theirs = {k: v for k, v in init.state_dict().items() if not k.startswith("pooler.")}
            if theirs.keys() != mine.keys() or any(theirs[k].shape != mine[k].shape for k in mine):
                raise SearchKDError(f"standalone {a}: the initial weights are of another shape ({init.config.shape})")
            lm.net.load_state_dict(theirs)
            lm.init_id = _fingerprint(*(theirs[k] for k in sorted(theirs)))
        return lm

    # ---- subnets ----------------------------------------------------------------------------
    def sandwich(self, step: int) -> list[BertArch]:
        """The subnets of ``step``: largest, smallest, two others drawn from ``(seed, step)``,
        each once (a space of fewer than 4 archs gives fewer)."""
        big, small = str(self.space.largest()), str(self.space.smallest())
        middle = [a for a in self._archs if a not in (big, small)]
        rng = np.random.default_rng([self.config.seed, 7, step])
        picks = rng.choice(len(middle), size=min(2, len(middle)), replace=False)
        # dict.fromkeys: a one-arch space (a standalone student) trains its arch once a step
        return [self.space.arch(a) for a in dict.fromkeys((big, small, *(middle[int(i)] for i in picks)))]

    def extract(self, arch: str | BertArch) -> BertNet:
        """A standalone encoder of ``arch`` with the supernet's sliced weights."""
        return extract(self.net, self.space.arch(arch).shape())

    def _autocast(self) -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and self.config.amp)

    def _losses(self, ids: torch.Tensor, mask: torch.Tensor, archs: Sequence[BertArch], *, backward: bool) -> list[float]:
        if self.teacher_qkv is None:
            raise SearchKDError("this SuperLM has no teacher_qkv: it can neither train nor score")
        with torch.no_grad(), self._autocast():
            tq = tuple(t.detach() for t in self.teacher_qkv(ids, mask))
        out = []
        for a in archs:
            with self._autocast():
                s = self.net(ids, mask, active=a.shape())
            loss = relation_loss(tq, (s.q, s.k, s.v), mask, heads=self.config.relation_heads, kind=self.config.loss)
            if backward:
                loss.backward()
            out.append(loss.detach())
        return torch.stack(out).tolist()  # one device sync for all subnets

    # ---- training ---------------------------------------------------------------------------
    def train(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, out_dir: str | Path | None = None,
              until: int | None = None, progress: bool | None = None) -> dict[str, Any]:
        """Train on the N×T ``input_ids``/``attention_mask`` up to step ``until`` (default
        ``config.steps``), continuing from ``out_dir``'s checkpoint when it holds one;
        checkpoints there every ``checkpoint_every`` steps and at the end.

        Returns ``step``, ``history`` (the summed sandwich loss of each step run here),
        ``seconds`` and ``tokens_per_s`` (non-padding tokens through the teacher per second).
        """
        c = self.config
        ids, mask = _check_data(input_ids, attention_mask, self.space, c.batch_size)
        data_id = _fingerprint(ids, mask)
        ckpt = Path(out_dir) if out_dir is not None else None
        if ckpt is not None and (ckpt / "checkpoint.pt").is_file():
            self._load(ckpt, data_id=data_id)
        until = c.steps if until is None else min(int(until), c.steps)
        history: list[float] = []
        tokens, t0 = 0, time.perf_counter()
        devices = [self.device] if self.device.type == "cuda" else []
        self.net.train()
        with torch.random.fork_rng(devices=devices), Progress(until, "supernet", enabled=progress) as bar:
            self._restore_rng()
            bar.moveto(self.step)
            while self.step < until:
                idx = _batch(self.step, len(ids), c.batch_size, c.seed)
                b_ids, b_mask = ids[idx].to(self.device), mask[idx].to(self.device)
                losses = self._losses(b_ids, b_mask, self.sandwich(self.step), backward=True)
                check_finite_loss(sum(losses), f"SuperLM training step {self.step + 1}")
                if c.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                history.append(sum(losses))
                tokens += int(b_mask.sum())
                rate = tokens / max(time.perf_counter() - t0, 1e-9)
                bar.moveto(self.step, loss=history[-1], **{"tok/s": f"{rate:.0f}"})
                if ckpt is not None and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self._save(ckpt, data_id, self._rng_state())
            self._rng = self._rng_state()
        if ckpt is not None:
            self._save(ckpt, data_id, self._rng)
        seconds = time.perf_counter() - t0
        return {"step": self.step, "history": history, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9)}

    @torch.no_grad()
    def score_many(self, archs: Sequence[str], input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   batch_size: int | None = None) -> list[float]:
        """Held-out relation loss of each arch (lower is better); the teacher runs once per batch."""
        chosen = [self.space.arch(a) for a in archs]
        ids, mask = _check_data(input_ids, attention_mask, self.space, 1)
        bs = batch_size or self.config.batch_size
        sums, weight = np.zeros(len(chosen)), 0
        was = self.net.training
        self.net.eval()
        try:
            for i in range(0, len(ids), bs):
                b_ids, b_mask = ids[i:i + bs].to(self.device), mask[i:i + bs].to(self.device)
                sums += np.array(self._losses(b_ids, b_mask, chosen, backward=False)) * len(b_ids)
                weight += len(b_ids)
        finally:
            self.net.train(was)
        return [float(v) for v in sums / weight]

    def score(self, arch: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              batch_size: int | None = None) -> float:
        """Held-out relation loss of ``arch`` in the supernet (forward only; lower is better)."""
        return self.score_many([arch], input_ids, attention_mask, batch_size)[0]

    # ---- checkpoints ------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"torch": torch.get_rng_state(), "cuda": cuda}

    def _restore_rng(self) -> None:
        if self._rng is None:
            torch.manual_seed(self.config.seed + 1)  # the dropout stream
            return
        torch.set_rng_state(self._rng["torch"])
        if self.device.type == "cuda" and self._rng.get("cuda") is not None:
            torch.cuda.set_rng_state(self._rng["cuda"], self.device)

    def _meta(self, data_id: str | None) -> dict[str, Any]:
        return {"format": FORMAT, "space": self.space.name, "grid": [list(c) for c in self.space.choices],
                "vocab_size": self.space.vocab_size, "max_position": self.space.max_position,
                "type_vocab": self.space.type_vocab, "teacher": self.teacher, "config": asdict(self.config),
                "step": self.step, "data": data_id, "init": self.init_id}

    def _save(self, ckpt: Path, data_id: str, rng: dict[str, Any] | None) -> None:
        ckpt.mkdir(parents=True, exist_ok=True)
        write_json(ckpt / "config.json", self._meta(data_id))  # first: a checkpoint.pt never lacks one
        state = {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "rng": rng, "step": self.step}
        tmp = atomic_path(ckpt / "checkpoint.pt")
        torch.save(state, tmp)
        tmp.replace(ckpt / "checkpoint.pt")

    def _load(self, ckpt: Path, *, data_id: str | None = None) -> None:
        meta = read_json(ckpt / "config.json")
        _check_meta(meta, self._meta(data_id), ckpt, data=data_id is not None)
        try:
            state = torch.load(ckpt / "checkpoint.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: one line, not a traceback
            raise SearchKDError(f"cannot read {ckpt / 'checkpoint.pt'} ({first_line(e)})") from None
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self._rng = int(state["step"]), state["rng"]

    @classmethod
    def load(cls, out_dir: str | Path, teacher_qkv: TeacherQKV | None, *, teacher: str,
             device: str | torch.device | None = None) -> "SuperLM":
        """The SuperLM saved in ``out_dir`` (to score with, or to train on); refuses one
        trained from another teacher than ``teacher``."""
        ckpt = Path(out_dir)
        meta = read_json(ckpt / "config.json")
        if meta.get("format") == "searchkd-superlm/1":
            raise SearchKDError(f"{ckpt} holds a SuperLM of an earlier searchkd (its subnets kept the first layers, "
                                "not evenly spaced ones): train a new one")
        if meta.get("format") != FORMAT or not (ckpt / "checkpoint.pt").is_file():
            raise SearchKDError(f"{ckpt} holds no SuperLM checkpoint (config.json and checkpoint.pt)")
        grid = meta["grid"]
        space = BertSpace(layers=grid[0], hidden=grid[1], heads=grid[2], ratios=grid[3], name=meta["space"],
                          vocab_size=meta["vocab_size"], max_position=meta["max_position"], type_vocab=meta["type_vocab"])
        known = {f.name for f in fields(SuperLMConfig)}
        lm = cls(space, teacher_qkv, teacher=teacher, config=SuperLMConfig(**{k: v for k, v in meta["config"].items() if k in known}),
                 device=device)
        lm.init_id = meta.get("init")
        lm._load(ckpt)
        return lm


def _check_meta(saved: dict[str, Any], mine: dict[str, Any], ckpt: Path, *, data: bool) -> None:
    if saved.get("format") != mine["format"]:
        raise SearchKDError(f"{ckpt} holds no SuperLM checkpoint of this format")
    for key, what in (("space", "sub-space"), ("grid", "grid"), ("vocab_size", "vocabulary"), ("teacher", "teacher"),
                      ("init", "initial weights")):
        if saved.get(key) != mine[key]:
            raise SearchKDError(f"{ckpt} belongs to another {what} ({saved.get(key)!r}, not {mine[key]!r}); "
                                "use another directory")
    differ = [k for k, v in mine["config"].items() if k != "checkpoint_every" and saved["config"].get(k) != v]
    if differ:
        raise SearchKDError(f"{ckpt} was trained with other settings ({', '.join(differ)}); use the same or another directory")
    if data and saved.get("data") != mine["data"]:
        raise SearchKDError(f"{ckpt} was trained on other data; use the same data or another directory")


def _check_data(ids: Any, mask: Any, space: BertSpace, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor)) or ids.dim() != 2 or ids.shape != mask.shape:
        raise SearchKDError("SuperLM data: input_ids and attention_mask must be N×T tensors of the same shape")
    if ids.shape[0] < batch_size or ids.shape[1] > space.max_position:
        raise SearchKDError(f"SuperLM data: need at least {batch_size} sequences of at most {space.max_position} "
                            f"tokens, got {tuple(ids.shape)}")
    if ids.min() < 0 or ids.max() >= space.vocab_size or not bool((mask.sum(1) > 0).all()):
        raise SearchKDError(f"SuperLM data: token ids must lie in 0..{space.vocab_size - 1} and every sequence "
                            "must hold at least one unmasked token")
    return ids.long(), mask.long()


def _fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _batch(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Step ``step``'s rows: epoch e's order is a permutation drawn from ``(seed, e)``, so a
    resumed run needs no sampler state; the last partial batch of an epoch is dropped."""
    epoch, i = divmod(step, n // batch_size)
    order = np.random.default_rng([seed, 11, epoch]).permutation(n)
    return torch.from_numpy(order[i * batch_size:(i + 1) * batch_size])
