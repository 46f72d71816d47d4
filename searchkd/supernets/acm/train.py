"""ACMization by distillation, the three stages of Wójcik et al. (AAAI 2025, §3.2), for a BERT
encoder converted by :func:`searchkd.supernets.acm.model.acmize`.

1. **Module-wise representation distillation**: the dense model runs once over the training
   text and every converted module's input and output are cached (each FFN block's, and with
   ``convert`` ``attention``/``all`` each Q/K/V/O projection's, as the authors' hooks on every
   replaced module), real tokens only; then every module's learners learn, all modules in one
   optimiser, to reproduce the dense output token by token: the mean over k = 1…N of ‖Σ_{j≤k} learner_j(x) − ffn(x)‖² / mean(ffn(x)²), the k-th
   partial sum passing gradient only into learner k (the authors' detach mode).
2. **Gate training from learner errors** (``gating_networks_train.py``): with e_k the error
   ‖Σ_{j≤k} learner_j(x) − ffn(x)‖ of k learners (e_0 = ‖ffn(x)‖), the authors' label: the
   first i with e_i / e_{i+1} < ``label_factor`` (1.2: learner i + 1 barely helps) gives
   i + 1, and i = 0 or no such i gives N (:func:`labels_from_errors`; so k = 0 is never a
   label, and a token whose first learner barely helps gets all N). Each gate learns its
   labels by the cross-entropy of its logits over its choices k = min_k…N (label k is class
   k − min_k; ``stage2_loss="ce"``, the default: a **declared departure**). The authors'
   loss, the NLL of the hard Gumbel-softmax sample (temperature 0.8, straight-through),
   ``log(sample + 1e-20)``, is ``stage2_loss="nll"`` (``--stage2-loss nll``): a miss of the
   hard sample puts a factor 1e20 on its straight-through gradient, and on MiniLM-L6 its gates
   matched their labels on .33–.74 of held-out tokens per layer against .58–.71 for ``ce``
   from the same stage 1 (:mod:`searchkd.supernets.acm.settings`). (The earlier "first k
   whose next learner helps less" labels are gone: no measurement kept them.)
   :func:`stage2_report` measures either on tokens neither stage trains on: the gate's argmax
   against its labels (:func:`split_cache`: the cache extended by ``cache_tokens // 8``).
3. **End-to-end fine-tuning** per target budget (:mod:`searchkd.supernets.acm.stage3`).

Every stage is checkpointed (``stage1.pt``, ``stage2.pt``, ``stage3-b{b}.pt``: the trained
parameters, the optimiser, the step) and resumed; each step's batch and Gumbel noise come from
the ``"acm"`` stream of :mod:`searchkd.seeds` named by the stage (budget included) and the step
(:func:`step_seed`), so a resumed run repeats them and no two stages or budgets share them. A
checkpoint is keyed on the settings its stage depends on (:func:`stage_meta`): stage 1 on its
own, stage 2 on stage 1's and its own, stage 3 on all; so a changed stage-2 setting resumes
stage 1 and a changed stage-3 setting resumes stages 1 and 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from searchkd.errors import SearchKDError
from searchkd.supernets.acm.model import ACM, CONVERT, acm_modules, acm_sites, attention_linears, ffn_layers
from searchkd.supernets.acm.settings import STAGE2_LOSS, check_stage2_loss
# stage 3 and its losses live in stage3.py; re-exported here, beside stages 1 and 2
from searchkd.supernets.acm.stage3 import compute_fraction, diversity_loss, entropy_loss, hidden_loss, stage3  # noqa: F401
from searchkd.supernets.acm.steps import _params, _run, batch_rows, step_seed  # noqa: F401
from searchkd.supernets.superlm import _fingerprint as data_id  # the same fingerprint of token rows

__all__ = ["ACMConfig", "cache_ffn", "cache_modules", "stage1", "stage1_loss", "stage2", "stage3", "stage_meta", "data_id",
           "calibrate_logits", "gate_labels", "labels_from_errors", "compute_fraction", "hidden_loss", "calibrate_budget", "step_seed",
           "batch_rows", "diversity_loss", "entropy_loss", "CALIBRATION_BOUND", "split_cache", "stage2_report",
           "HELD_OUT", "STAGE1_SETTINGS", "STAGE2_SETTINGS"]


@dataclass(frozen=True)
class ACMConfig:
    """ACMization settings; all but ``checkpoint_every`` must match to resume."""

    learners: int = 4
    init: str = "slices"
    stage1_steps: int = 300
    stage2_steps: int = 200
    stage3_steps: int = 100
    token_batch: int = 2048
    batch_size: int = 8
    cache_tokens: int = 16384
    stage1_lr: float = 1e-3
    stage2_lr: float = 1e-2
    stage3_lr: float = 1e-4
    label_factor: float = 1.2
    budget_weight: float = 0.1
    diversity_weight: float = 0.05
    entropy_weight: float = 0.05
    seed: int = 0
    checkpoint_every: int = 50
    convert: str = "ffn"  # what is converted (model.CONVERT): FFN blocks, attention projections or both
    stage2_loss: str = STAGE2_LOSS  # "nll" (the authors') or "ce" (cross-entropy of the gate logits)

    def __post_init__(self) -> None:
        check_stage2_loss(self.stage2_loss)
        if self.convert not in CONVERT:
            raise SearchKDError(f"--convert must be one of {', '.join(CONVERT)}, got {self.convert!r}")
        if not isinstance(self.learners, int) or self.learners < 2:
            raise SearchKDError(f"ACM needs at least 2 learners (--learners), got {self.learners!r}")
        if min(self.stage1_steps, self.stage2_steps, self.stage3_steps) < 0 or min(self.token_batch, self.batch_size,
                                                                                  self.cache_tokens) < 1:
            raise SearchKDError(f"ACMConfig: steps must be >= 0 and batch sizes >= 1, got {self}")


CALIBRATION_BOUND = 64.0  # |shift| of calibrate_budget's bisection
HELD_OUT = 8  # stage2_report reads cache_tokens // HELD_OUT tokens cached beyond the training cache
#: the ACMConfig settings stage 1's and stage 2's checkpoints depend on (stage 3's: all but checkpoint_every)
STAGE1_SETTINGS = ("learners", "init", "seed", "convert", "cache_tokens", "token_batch", "stage1_steps", "stage1_lr")
STAGE2_SETTINGS = STAGE1_SETTINGS + ("stage2_steps", "stage2_lr", "label_factor", "stage2_loss")


# ---- stage 1/2 data -------------------------------------------------------------------------
@torch.no_grad()
def cache_ffn(dense: nn.Module, ids: torch.Tensor, mask: torch.Tensor, *, max_tokens: int, seed: int,
              batch_size: int = 16, _on_batch: dict[str, Any] | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, (inputs, outputs) of the dense FFN block (``output.dense(act(intermediate(x)))``,
    before dropout and LayerNorm) on up to ``max_tokens`` real tokens of seeded-shuffled rows."""
    layers = ffn_layers(dense)
    store: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in layers]
    current: dict[str, Any] = {} if _on_batch is None else _on_batch  # shared with cache_modules' hooks

    def hook(i: int) -> Callable[..., None]:
        def save(_m: Any, inputs: Any, output: torch.Tensor) -> None:
            keep = current["mask"]
            x = layers[i].intermediate.dense.last_input
            store[i].append((x[keep].float().cpu(), output[keep].float().cpu()))

        return save

    def grab(_m: Any, inputs: Any) -> None:
        _m.last_input = inputs[0]

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.intermediate.dense.register_forward_pre_hook(grab))
        handles.append(layer.output.dense.register_forward_hook(hook(i)))
    try:
        _replay(dense, ids, mask, max_tokens=max_tokens, seed=seed, batch_size=batch_size, current=current)
    finally:
        for h in handles:
            h.remove()
        for layer in layers:
            layer.intermediate.dense.__dict__.pop("last_input", None)
    return [(torch.cat([a for a, _ in s])[:max_tokens], torch.cat([b for _, b in s])[:max_tokens]) for s in store]


@torch.no_grad()
def cache_modules(dense: nn.Module, ids: torch.Tensor, mask: torch.Tensor, *, max_tokens: int, seed: int,
                  convert: str = "ffn", batch_size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, outputs) of every module ``convert`` names, in :func:`acm_sites` order (per
    layer Q, K, V, O, then the FFN block), on the real tokens :func:`cache_ffn` sees; ``ffn``
    is :func:`cache_ffn` itself. Q, K and V share one input tensor (they read the same states)."""
    if convert == "ffn":
        return cache_ffn(dense, ids, mask, max_tokens=max_tokens, seed=seed, batch_size=batch_size)
    sites = [[getattr(p, n) for p, n in layer] for layer in attention_linears(dense)]
    linears = [m for layer in sites for m in layer]
    store: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in linears]
    current: dict[str, Any] = {}

    def hook(i: int) -> Callable[..., None]:
        def save(_m: Any, inputs: Any, output: torch.Tensor) -> None:
            x = inputs[0]
            if current.get("x_src") is not x:  # Q, K and V read one tensor: keep one copy
                current["x_src"], current["x"] = x, x[current["mask"]].float().cpu()
            store[i].append((current["x"], output[current["mask"]].float().cpu()))

        return save

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(linears)]
    try:
        ffn = cache_ffn(dense, ids, mask, max_tokens=max_tokens, seed=seed, batch_size=batch_size,
                        _on_batch=current) if convert == "all" else None
        if ffn is None:
            _replay(dense, ids, mask, max_tokens=max_tokens, seed=seed, batch_size=batch_size, current=current)
    finally:
        for h in handles:
            h.remove()
    joined: dict[tuple[int, ...], torch.Tensor] = {}

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        key = tuple(id(t) for t in parts)
        if key not in joined:
            joined[key] = torch.cat(parts)[:max_tokens]
        return joined[key]

    pairs = [(cat([a for a, _ in st]), torch.cat([b for _, b in st])[:max_tokens]) for st in store]
    out, per = [], len(sites[0])
    for i in range(len(sites)):
        out += pairs[i * per:(i + 1) * per]
        if ffn is not None:
            out.append(ffn[i])
    return out


@torch.no_grad()
def _replay(dense: nn.Module, ids: torch.Tensor, mask: torch.Tensor, *, max_tokens: int, seed: int, batch_size: int,
            current: dict[str, Any]) -> None:
    """The dense model over the rows :func:`cache_ffn` reads, in its order, ``current["mask"]``
    set to each batch's real tokens (for hooks that cache)."""
    rows = np.random.default_rng([seed, 13]).permutation(len(ids))
    device = next(dense.parameters()).device
    was, seen = dense.training, 0
    dense.eval()
    try:
        for s in range(0, len(rows), batch_size):
            idx = torch.from_numpy(rows[s:s + batch_size])
            b_ids, b_mask = ids[idx].to(device), mask[idx].to(device)
            current["mask"] = b_mask.bool()
            dense(input_ids=b_ids, attention_mask=b_mask)
            seen += int(b_mask.sum())
            if seen >= max_tokens:
                break
    finally:
        dense.train(was)


def stage1_loss(acms: list[ACM], pairs: list[tuple[torch.Tensor, torch.Tensor]], scales: list[float]) -> torch.Tensor:
    """Stage 1's loss on token batches ``pairs`` = (x, ffn(x)) per ACM: the mean over layers and
    over k = 1…N of the k-th partial sum's MSE / ``scale``, the k-th sum passing gradient only
    into learner k (its predecessors detached, the authors' ``detach`` mode)."""
    total = torch.zeros((), device=pairs[0][0].device)
    for acm, (x, y), s in zip(acms, pairs, scales, strict=True):
        sums = acm.partial_sums(x, detach_previous=True)[..., 1:, :]
        total = total + (sums - y.unsqueeze(-2)).pow(2).mean() / s
    return total / len(acms)


def _acm_params(model: nn.Module, names: tuple[str, ...]) -> dict[str, nn.Parameter]:
    """The parameters ``names`` (``w1`` … or ``gate.``) of every ACM, in ``named_parameters`` order."""
    prefixes = tuple(f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, ACM) for p in names)
    return _params(model, lambda n: n.startswith(prefixes))


def stage1(model: nn.Module, cache: list[tuple[torch.Tensor, torch.Tensor]], config: ACMConfig, *,
           meta: dict[str, Any], ckpt: Path | None = None, progress: bool | None = None) -> list[float]:
    """Stage 1 on ``cache`` (:func:`cache_modules`); trains the learners of every ACM at once."""
    acms = acm_sites(model)
    scale = [float(y.pow(2).mean().clamp_min(1e-12)) for _, y in cache]
    device = next(model.parameters()).device

    def loss(step: int) -> torch.Tensor:
        idx = batch_rows(step, len(cache[0][0]), config.token_batch, config.seed, "stage1")
        return stage1_loss(acms, [(x[idx].to(device), y[idx].to(device)) for x, y in cache], scale)

    return _run("stage1", model, _acm_params(model, ("w1", "w2", "b1", "b2")), config.stage1_steps,
                config.stage1_lr, loss, config=config, meta=meta, ckpt=ckpt, progress=progress)


def labels_from_errors(err: torch.Tensor, factor: float) -> torch.Tensor:
    """The authors' gate label from errors ``err`` (…×(N+1), e_0…e_N; module docstring)."""
    n = err.shape[-1] - 1
    weak = (err[..., :-1] / err[..., 1:]) < factor  # weak[i]: learner i + 1 barely helps
    first = weak.to(torch.int64).argmax(-1)  # 0 also when none is weak
    return torch.where(first == 0, torch.full_like(first, n), first + 1)


@torch.no_grad()
def gate_labels(acm: ACM, x: torch.Tensor, y: torch.Tensor, factor: float) -> torch.Tensor:
    """The gate's label per token of ``x`` against the dense block's output ``y``."""
    return labels_from_errors((acm.partial_sums(x) - y.unsqueeze(-2)).norm(dim=-1), factor)


def stage2(model: nn.Module, cache: list[tuple[torch.Tensor, torch.Tensor]], config: ACMConfig, *,
           meta: dict[str, Any], ckpt: Path | None = None, progress: bool | None = None) -> list[float]:
    """Stage 2: every gate learns the labels of its module's learner errors on the cache, by
    ``config.stage2_loss`` (module docstring)."""
    acms = acm_sites(model)
    device = next(model.parameters()).device
    labels = [gate_labels(a, x.to(device), y.to(device), config.label_factor).cpu() for a, (x, y) in zip(acms, cache)]

    def gate_loss(acm: ACM, x: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        logits = acm.gate_logits(x).float()
        if config.stage2_loss == "ce":  # the logits are k = min_k…N: label k is class k − min_k
            return nn.functional.cross_entropy(logits, lab - acm.shape.min_k)
        sample = acm.pad_choices(nn.functional.gumbel_softmax(logits, tau=acm.tau, hard=True))
        return nn.functional.nll_loss((sample + 1e-20).log(), lab)

    def loss(step: int) -> torch.Tensor:
        idx = batch_rows(step, len(cache[0][0]), config.token_batch, config.seed, "stage2")
        total = torch.zeros((), device=device)
        for acm, (x, _), lab in zip(acms, cache, labels, strict=True):
            total = total + gate_loss(acm, x[idx].to(device), lab[idx].to(device))
        return total / len(acms)

    return _run("stage2", model, _acm_params(model, ("gate.",)), config.stage2_steps,
                config.stage2_lr, loss, config=config, meta=meta, ckpt=ckpt, progress=progress)


@torch.no_grad()
def calibrate_budget(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, budget: float, *, rows: int = 32,
                     seed: int = 0, iters: int = 30, bound: float = CALIBRATION_BOUND,
                     tolerance: float = 0.0) -> dict[str, Any]:
    """Shift every gate's logits by s·k/N, one s for the whole model, so that the inference
    choices (argmax) on ``rows`` training rows spend ``budget`` of the learner compute: the
    smallest s whose compute fraction reaches the budget, by bisection (for fixed inputs a
    gate's argmax never falls as s grows, since an increasing function of k is added to its
    logits; a layer's inputs also move with the layers before it, so the model's fraction is
    only nearly monotone, which bisection tolerates). Folded into the gates' last bias, so
    the saved model needs nothing new. A shift that ends at ±``bound`` did not find the
    budget: the result says ``bounded: True`` and one warning line goes to stderr.

    With every ACM's ``routing == "expected"`` the shift is added to ``k_offset`` instead (in
    k units, bounded by ±N): the same bisection, the tokens' order by expected k kept. Budget
    1.0 takes the whole bound, so that rows other than the calibration rows run every learner too.

    Not in the paper, where only the budget penalty of stage 3 steers the compute: on a short
    CPU schedule that left budget 1.0 at 0.79 of the compute. Run after stage 3, which stays
    the paper's, and optionally before it too (``searchkd acm --calibrate-before-stage3``), so
    that stage 3 trains under the budget's routing; a model already within ``tolerance`` of the
    budget is left as it is. Returns s and the fractions before and after."""
    from searchkd.supernets.acm.model import set_token_mask

    acms = acm_modules(model)
    device = next(model.parameters()).device
    idx = torch.from_numpy(np.random.default_rng([seed, 31]).choice(len(ids), size=min(rows, len(ids)), replace=False))
    b_ids, b_mask = ids[idx].to(device), mask[idx].to(device)
    heads = [a.gate[-1] for a in acms]
    bias0 = [h.bias.detach().clone() for h in heads]
    ramps = [torch.arange(a.shape.min_k, a.learners + 1, device=device, dtype=h.bias.dtype) / a.learners
             for a, h in zip(acms, heads)]
    expected = {a.routing for a in acms} == {"expected"}
    offset0 = [a.k_offset for a in acms]
    if expected:  # an offset beyond ±N moves no token further
        bound = min(bound, float(max(a.learners for a in acms)))
    was_training = model.training
    model.eval()

    def fraction(shift: float) -> float:
        for a, h, b0, r, o0 in zip(acms, heads, bias0, ramps, offset0):
            if expected:
                a.k_offset = o0 + shift
            else:
                h.bias.copy_(b0 + shift * r)
        with set_token_mask(model, b_mask):
            model(input_ids=b_ids, attention_mask=b_mask)
        return float(compute_fraction(model, b_mask)[0])

    try:
        before = fraction(0.0)
        if abs(before - budget) <= tolerance:
            return {"shift": 0.0, "fraction_before": before, "fraction_after": before, "bounded": False,
                    "routing": "expected" if expected else "argmax"}
        lo, hi = -bound, bound
        if budget >= 1.0:  # every token at N, held-out rows included: the whole shift, not just enough
            lo = hi
        elif fraction(lo) >= budget:
            hi = lo
        elif fraction(hi) < budget:
            lo = hi
        for _ in range(iters if lo < hi else 0):
            mid = (lo + hi) / 2
            if fraction(mid) >= budget:
                hi = mid
            else:
                lo = mid
        after = fraction(hi)
    finally:
        model.train(was_training)
    bounded = abs(hi) >= bound and not (budget >= 1.0 and after >= budget)
    if bounded:
        import sys

        print(f"searchkd: warning: budget {budget:g}: the gates' calibration shift hit its bound ±{bound:g} "
              f"(compute fraction {after:.3f}, not {budget:g})", file=sys.stderr)
    return {"shift": hi, "fraction_before": before, "fraction_after": after, "bounded": bounded,
            "routing": "expected" if expected else "argmax"}


def calibrate_logits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, budget: float, **kw: Any) -> dict[str, Any]:
    """:func:`calibrate_budget` into the gates' logits whatever the ACMs' routing (restored
    after): the calibration before stage 3, which samples its gates from their logits."""
    acms = acm_modules(model)
    routing = [a.routing for a in acms]
    for a in acms:
        a.routing = "argmax"
    try:
        return calibrate_budget(model, ids, mask, budget, **kw)
    finally:
        for a, r in zip(acms, routing):
            a.routing = r


def split_cache(cache: list[tuple[torch.Tensor, torch.Tensor]], tokens: int) -> tuple[list, list]:
    """Every module's cached pairs cut after ``tokens``: (what stages 1 and 2 train on, the
    rest). A cache of ``cache_tokens + cache_tokens // HELD_OUT`` tokens leaves its first
    ``cache_tokens`` as a cache of ``cache_tokens`` alone (the same rows in the same order), so
    holding tokens out changes nothing stages 1 and 2 see; text with no more real tokens than
    ``tokens`` holds none out. The row that straddles the cut gives tokens to both sides."""
    return [(x[:tokens], y[:tokens]) for x, y in cache], [(x[tokens:], y[tokens:]) for x, y in cache]


def _shares(k: torch.Tensor, n: int) -> list[float]:
    return [float(v) / len(k) for v in torch.bincount(k.cpu(), minlength=n + 1)]


@torch.no_grad()
def stage2_report(model: nn.Module, held: list[tuple[torch.Tensor, torch.Tensor]], factor: float) -> dict[str, Any]:
    """Stage 2 measured on ``held`` ((x, dense output) per ACM in :func:`acm_sites` order, tokens
    stage 2 never trained on): per ACM, ``label_accuracy``, the share of tokens whose gate argmax
    (the inference choice, before any calibration) is their :func:`gate_labels` label at
    ``factor``; ``argmax_share`` and ``label_share``, the share of tokens at each k (index = k,
    0…N); and ``held_out_tokens``. No tokens: None for each measure."""
    n = len(held[0][0]) if held else 0
    if n == 0:
        return {"held_out_tokens": 0, "label_accuracy": None, "argmax_share": None, "label_share": None}
    device = next(model.parameters()).device
    accuracy, chosen, labelled = [], [], []
    for acm, (x, y) in zip(acm_sites(model), held, strict=True):
        x, y = x.to(device), y.to(device)
        label = gate_labels(acm, x, y, factor)
        k = acm.gate_logits(x).argmax(-1) + acm.shape.min_k
        accuracy.append(float((k == label).double().mean()))
        chosen.append(_shares(k, acm.learners))
        labelled.append(_shares(label, acm.learners))
    return {"held_out_tokens": n, "label_accuracy": accuracy, "argmax_share": chosen, "label_share": labelled}


def stage_meta(base_id: str, config: ACMConfig, data_id: str, stage: str = "stage3") -> dict[str, Any]:
    """What the checkpoint of ``stage`` (``stage1``, ``stage2``, ``stage3``) must match to be
    resumed: the base model, the data and the settings the stage depends on
    (:data:`STAGE1_SETTINGS`, :data:`STAGE2_SETTINGS`; stage 3: all but ``checkpoint_every``).
    A checkpoint saved when every stage's key held the whole config resumes when these match
    (:func:`searchkd.supernets.acm.steps.meta_differences`)."""
    settings = {k: v for k, v in asdict(config).items() if k != "checkpoint_every"}
    keep = {"stage1": STAGE1_SETTINGS, "stage2": STAGE2_SETTINGS, "stage3": tuple(settings)}[stage]
    return {"format": "searchkd-acm-stage/1", "base": base_id, "config": {k: settings[k] for k in keep},
            "data": data_id}
