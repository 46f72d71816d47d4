"""What an AutoDistil student is for: accuracy on a labelled text task after fine-tuning
(``searchkd distill --result R --task T``), as AutoDistil's search scripts fine-tune subnets
on a GLUE task (``finetune_plus_search_TaskProxy_glue.py``) and its paper reports GLUE.

Each top student of the search (its weights sliced from the trained SuperLM, what the search
exports) is fine-tuned beside three controls, as in AutoDistil's table:

* ``random``: the same shape from BERT's random initialisation;
* ``truncated-teacher``: the teacher cut to the same shape with no SuperLM training
  (:func:`searchkd.supernets.superlm_init.cut_net`: evenly spaced layers, the first hidden
  units, heads and FFN units);
* ``teacher``: the teacher itself, fine-tuned the same way.

Recipe (the same for every model; ``seeds`` repeat it with another classifier init, dropout
and batch order): mean-pooled last hidden state → dropout 0.1 → linear classifier, AdamW
(lr ``lr``, weight decay 0.01 off biases and LayerNorms), linear warm-up over 10 % of the
steps then linear decay, gradient norm clipped to 1, batches of ``batch_size`` sequences of
at most ``max_length`` tokens. Departure: BERT fine-tunes on the pooler's [CLS] state; the
SuperLM has no pooler to hand on, and MiniLM (the default teacher) is a mean-pooling sentence
encoder, so every model is read by mean pooling here.

The task is split stratified (``test`` fraction, the split seed of the search); a test
example whose text lies inside a row the SuperLM trained on is removed from the test split
(counted in ``n_test_seen_by_superlm``), so no model is scored on text the student saw.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Sequence

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["finetune_accuracy", "downstream_block", "run_downstream", "ROLES", "DEFAULT_FINETUNE_STEPS",
           "DEFAULT_FINETUNE_LR"]

ROLES = ("student", "random", "truncated-teacher", "teacher")
#: fine-tuning steps when ``distill --task`` gives none (a CPU default, see docs/autodistil.md)
DEFAULT_FINETUNE_STEPS = 300
#: fine-tuning learning rate (chosen on a validation split of the task's training part:
#: ``benchmarks/bert_finetune_recipe.py``)
DEFAULT_FINETUNE_LR = 1e-3
#: fine-tuning seeds (the spread docs/benchmarks.md reports is over these)
DEFAULT_SEEDS = (0, 1, 2)


def _hidden(model: Any) -> Callable[[Any, Any], Any]:
    if hasattr(model, "set_active"):  # a BertNet
        return lambda ids, mask: model(ids, mask).last_hidden_state
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).last_hidden_state


def finetune_accuracy(encoder: Any, width: int, train: tuple[Any, Any, Any], test: tuple[Any, Any, Any], *,
                      classes: int, steps: int, batch_size: int = 32, lr: float = DEFAULT_FINETUNE_LR, seed: int = 0,
                      device: Any = "cpu") -> float:
    """Fine-tune a copy of ``encoder`` (a BertNet or a transformers encoder of ``width``
    hidden units) with a mean-pooling classifier for ``steps`` on ``train`` = (ids, mask,
    labels) and return its accuracy on ``test`` (see the module docstring)."""
    import torch

    from searchkd.teachers.text import mean_pool

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = copy.deepcopy(encoder).to(device).train()
        head = torch.nn.Linear(width, classes).to(device)
        torch.nn.init.normal_(head.weight, std=0.02)
        torch.nn.init.zeros_(head.bias)
        drop = torch.nn.Dropout(0.1)
        forward = _hidden(enc)
        params = list(enc.named_parameters()) + [("head." + n, p) for n, p in head.named_parameters()]
        no_decay = [p for n, p in params if n.endswith("bias") or "LayerNorm" in n]
        decay = [p for n, p in params if not (n.endswith("bias") or "LayerNorm" in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=lr)
        warm = max(1, steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
        ids, mask, y = train
        order = np.random.default_rng([seed, 0xF1]).permutation(len(ids))
        pos = 0
        for _ in range(steps):
            if pos + batch_size > len(order):
                order, pos = np.random.default_rng([seed, 0xF1, _]).permutation(len(ids)), 0
            idx = torch.from_numpy(order[pos:pos + batch_size])
            pos += batch_size
            n = int(mask[idx].sum(1).max())  # padding past the batch's longest text changes nothing: cut it
            b_ids, b_mask, b_y = ids[idx, :n].to(device), mask[idx, :n].to(device), y[idx].to(device)
            logits = head(drop(mean_pool(forward(b_ids, b_mask), b_mask)))
            loss = torch.nn.functional.cross_entropy(logits, b_y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        enc.eval()
        correct = 0
        with torch.no_grad():
            t_ids, t_mask, t_y = test
            for i in range(0, len(t_ids), 128):
                n = int(t_mask[i:i + 128].sum(1).max())
                m = t_mask[i:i + 128, :n].to(device)
                logits = head(mean_pool(forward(t_ids[i:i + 128, :n].to(device), m), m))
                correct += int((logits.argmax(-1).cpu() == t_y[i:i + 128]).sum())
    return correct / len(t_ids)


def _seen(texts: Sequence[str], rows: Sequence[str]) -> np.ndarray:
    corpus = "\n".join(rows)
    return np.asarray([t in corpus for t in texts], dtype=bool)


def downstream_block(task_spec: str, *, archs: Sequence[str], lm: Any, teacher: Any, space: Any,
                     superlm_rows: Sequence[str], split_seed: int, steps: int, seeds: Sequence[int],
                     device: Any, max_length: int = 64, batch_size: int = 32, lr: float = DEFAULT_FINETUNE_LR,
                     test: float = 0.3, on_row: Callable[[dict[str, Any]], None] | None = None, with_teacher: bool = True,
                     controls: bool = True) -> dict[str, Any]:
    """Fine-tune each of ``archs`` (sliced from the SuperLM ``lm``) and, with ``controls``, its
    random-init and truncated-teacher controls on the task over ``seeds``; the ``downstream``
    block of ``verify.json`` (one row per model: accuracy mean, sd over the seeds, and each seed's)."""
    import torch

    from searchkd.data.text_tasks import load_task
    from searchkd.spaces._bert_net import BertNet
    from searchkd.supernets.superlm_init import cut_problem, pretrained_shape, cut_net

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SearchKDError(f"--finetune-steps must be a positive integer, got {steps!r}")
    if len(seeds) < 1:
        raise SearchKDError("the downstream task needs at least one fine-tuning seed")
    task = load_task(task_spec)
    train, held = task.split(test, seed=split_seed)
    seen = _seen(held.texts, superlm_rows)
    held = held.subset(np.flatnonzero(~seen))
    if len(held) < 2:
        raise SearchKDError(f"task {task.name}: every test example lies in the SuperLM's training text; use a task "
                            "whose text the search did not train on")
    tok = teacher.tokenizer
    tr = (*train.encode(tok, max_length), torch.from_numpy(train.labels))
    te = (*held.encode(tok, max_length), torch.from_numpy(held.labels))
    base = getattr(teacher.model, "base_model", teacher.model)
    t_shape = pretrained_shape(base.config)
    t_state = {k: v.detach().cpu() for k, v in base.state_dict().items()}
    t_params = sum(p.numel() for p in base.parameters()) / 1e6
    block: dict[str, Any] = {
        "task": task.name, "classes": list(task.classes), "n_train": len(train), "n_test": len(held),
        "n_test_seen_by_superlm": int(seen.sum()), "majority_accuracy": float(np.bincount(held.labels).max() / len(held)),
        "steps": steps, "seeds": list(seeds), "batch_size": batch_size, "lr": lr, "max_length": max_length,
        "pooling": "mean", "teacher_params": t_params, "rows": [], "notes": []}

    def run(role: str, arch: str | None, make: Callable[[int], Any], width: int, params: float) -> None:
        t0 = time.perf_counter()
        accs = [finetune_accuracy(make(s), width, tr, te, classes=len(task.classes), steps=steps,
                                  batch_size=batch_size, lr=lr, seed=s, device=device) for s in seeds]
        row = {"role": role, "arch": arch, "params": params, "param_fraction": params / t_params,
               "accuracy_mean": float(np.mean(accs)), "accuracy_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
               "accuracies": accs, "seconds": time.perf_counter() - t0}
        block["rows"].append(row)
        if on_row is not None:
            on_row(block)

    for arch in archs:
        a = space.arch(arch)
        cfg = lm.net.config
        params = sum(p.numel() for p in lm.extract(arch).parameters()) / 1e6
        run("student", arch, lambda s: lm.extract(arch).cpu(), a.hidden, params)
        if not controls:
            continue

        def random_net(s: int, a: Any = a) -> Any:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                return BertNet(type(cfg)(a.shape(), vocab_size=cfg.vocab_size, max_position=cfg.max_position,
                                         type_vocab=cfg.type_vocab, dropout=cfg.dropout, pooler=False))

        run("random", arch, random_net, a.hidden, params)
        why = cut_problem(a.shape(), t_shape)
        if why is None and str(base.config.model_type) in ("bert", "searchkd_bert"):
            cut = cut_net(type(cfg)(a.shape(), vocab_size=cfg.vocab_size, max_position=cfg.max_position,
                                    type_vocab=cfg.type_vocab, dropout=cfg.dropout, pooler=False), t_state, t_shape)
            run("truncated-teacher", arch, lambda s: cut, a.hidden, params)
        else:
            block["notes"].append(f"no truncated-teacher control for {arch}: {why or 'the teacher is not a BERT layout'}")
    if with_teacher:
        run("teacher", None, lambda s: base, int(base.config.hidden_size), t_params)
    return block



def run_downstream(result: Any, *, task: str, top: int = 1, finetune_steps: int | None = None,
                   seeds: Sequence[int] = DEFAULT_SEEDS, device: str | None = None, progress: bool | None = None,
                   **_: Any) -> dict[str, Any]:
    """``searchkd distill --result R --task T``: the ``downstream`` block for the search's top
    ``top`` students (its best first), added to ``DIR/verify.json`` (created when missing)."""
    from pathlib import Path

    import torch

    from searchkd._version import __version__
    from searchkd.distill.select import pick_students, proxy_name, read_result
    from searchkd.distill.split import search_split_seed, supernet_dir
    from searchkd.devices import resolve_device
    from searchkd.evaluate.text import _qkv, _teacher, text_split
    from searchkd.io import read_json, write_json
    from searchkd.supernets.superlm import SuperLM

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise SearchKDError(f"top must be an integer >= 1, got {top!r}")
    result_path = Path(result)
    res, trials = read_result(result_path)
    out_dir = (result_path if result_path.is_dir() else result_path.parent).resolve()
    config = res["config"]
    supernet = supernet_dir(config, out_dir)
    dev = torch.device(resolve_device(device))
    teacher = _teacher(config.get("teacher"), config.get("teacher_weights"), dev)
    lm = SuperLM.load(supernet, _qkv(teacher), teacher=teacher.info.id, device="cpu")
    picked, how = pick_students(res, trials, lm.space, proxy_name(config, trials, "superlm"), top=top, controls=0)
    split = search_split_seed(config)
    train, _ = text_split(config.get("data") or "embedded-text", teacher, split)
    verify_json = out_dir / "verify.json"
    report = read_json(verify_json) if verify_json.is_file() else {
        "searchkd_version": __version__, "result": str(result_path), "kind": "text", "students": [], "verdict": None,
        "notes": [], "complete": True, "verify_json": str(verify_json),
        "config": {"space": lm.space.name, "teacher": teacher.info.name, "split_seed": split}}

    def save(block: dict[str, Any]) -> None:
        report["downstream"] = {**block, "complete": False, "selection": how, "supernet": str(supernet),
                                "supernet_step": lm.step, "device": str(dev)}
        write_json(verify_json, report)

    block = downstream_block(task, archs=[s.arch for s in picked], lm=lm, teacher=teacher.to(dev), space=lm.space,
                             superlm_rows=train.sentences, split_seed=split,
                             steps=finetune_steps or DEFAULT_FINETUNE_STEPS, seeds=list(seeds), device=dev, on_row=save)
    save(block)
    report["downstream"]["complete"] = True
    write_json(verify_json, report)
    return report
