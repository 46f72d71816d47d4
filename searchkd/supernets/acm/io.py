"""Saving and reopening a model converted by :func:`searchkd.supernets.acm.model.acmize`: a
``save_pretrained``-style directory (``config.json``, ``acm.json`` with the ACM shape, what was
converted (``convert``: ``ffn``, ``attention`` or ``all``; a folder saved before it was recorded
is ``ffn``), the base model's id and name and what the caller adds, ``model.safetensors``, the tokenizer files),
written to a temporary sibling and renamed, so a directory is whole or absent.

``config.json`` is the base model's with ``model_type`` ``searchkd_acm`` and ``architectures``
``["SearchKDACMModel"]`` (the base's own ``model_type`` kept as ``acm_base_model_type``): its FFN
weights are the learners', under names no ``BertModel`` has, so a plain
``transformers.AutoModel.from_pretrained`` must refuse the folder rather than load a BERT whose
every FFN block is random. :func:`load_acm` reopens it; ``hf:DIR`` refuses it (:func:`acm_folder`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch.nn as nn

from searchkd.errors import SearchKDError, first_line
from searchkd.hf.load import ACM_FORMAT as _FORMAT, ACM_MODEL_TYPE as MODEL_TYPE, acm_folder
from searchkd.supernets.acm.model import ACMShape, acm_modules, acmize, converted

__all__ = ["save_acm", "load_acm", "acm_folder", "MODEL_TYPE"]



def save_acm(model: nn.Module, out_dir: str | Path, *, base: dict[str, Any], tokenizer_dir: str | Path | None = None,
             extra: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir`` (``config.json`` of the base model, ``acm.json``, ``model.safetensors``,
    the tokenizer files) through a temporary directory renamed into place."""
    import shutil

    from safetensors.torch import save_file

    from searchkd.hf.load import umask_mode
    from searchkd.io import write_json

    acms = acm_modules(model)
    if not acms:
        raise SearchKDError("save_acm: the model has no ACMs")
    target = Path(out_dir)
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    config = getattr(model, "config").to_dict()
    config.update(model_type=MODEL_TYPE, architectures=["SearchKDACMModel"],
                  acm_base_model_type=config.get("model_type"))
    write_json(tmp / "config.json", config)
    ffn = [a for a in acms if a.shape.kind == "ffn"]
    linear = [a for a in acms if a.shape.kind == "linear"]
    shapes = {"shape": asdict((ffn or linear)[0].shape)}  # the FFN blocks' where converted, as before
    if linear:
        shapes["attention_shape"] = asdict(linear[0].shape)
    routing = {"routing": acms[0].routing, "k_offset": [float(a.k_offset) for a in acms]}
    write_json(tmp / "acm.json", {"format": _FORMAT, **shapes, "layers": len(ffn) or len(linear) // 4, "modules": len(acms),
                                  "convert": converted(model), "base": base, **routing, **(extra or {})})
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    umask_mode(tmp / "model.safetensors")  # safetensors writes 0600
    if tokenizer_dir is not None:
        for f in Path(tokenizer_dir).iterdir():
            if f.is_file() and (f.name.startswith(("tokenizer", "vocab", "special_tokens")) or f.suffix == ".model"):
                shutil.copy2(f, tmp / f.name)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def _base_config(d: Path) -> Any:
    """The base model's transformers config from ``config.json`` (``searchkd_acm`` or, in a folder
    saved before it had its own ``model_type``, the base's)."""
    import json

    import transformers

    from searchkd.hf.load import register_hf

    register_hf()  # a converted AutoDistil student (searchkd_bert)
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != MODEL_TYPE:
        return transformers.AutoConfig.from_pretrained(str(d), local_files_only=True)
    base = config.pop("acm_base_model_type", None)
    for k in ("model_type", "architectures", "transformers_version"):
        config.pop(k, None)
    return transformers.CONFIG_MAPPING[base].from_dict(config)


def load_acm(path: str | Path, *, base_id: str | None = None, device: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """A converted model saved by :func:`save_acm` (eval mode) and its ``acm.json``; the modules
    its ``convert`` names are rebuilt (``ffn`` for a folder saved before it was recorded).

    Args:
        base_id: refuse a model converted from another base model: the name it was converted
            from (``minilm-l6``, or ``hf:DIR`` as an absolute path), or its teacher id (the
            fingerprint of its config and weights, ``acm.json``'s ``base.id``, also in the run's
            ``OUT/acm.json`` under ``base.id``).
    """
    from searchkd.io import read_json

    d = Path(path)
    try:
        meta = read_json(d / "acm.json")
        ok = isinstance(meta, dict) and meta.get("format") == _FORMAT
    except (OSError, ValueError, SearchKDError):
        ok = False
    if not ok:
        raise SearchKDError(f"{d}: not a converted ACM model (acm.json missing or of another format)")
    base = meta.get("base") or {}
    if base_id is not None and base_id not in (base.get("id"), base.get("name")):
        raise SearchKDError(f"{d}: converted from another base model ({base.get('name') or base.get('id')!r}, "
                            f"id {base.get('id')!r}; not {base_id!r})")
    try:
        import transformers
        from safetensors.torch import load_file

        model = transformers.AutoModel.from_config(_base_config(d))
        shape = ACMShape(**{"gate": "mlp", **meta["shape"]})  # saves before the gate was recorded had the MLP
        acmize(model, shape.learners, gate_hidden=shape.gate_hidden, init="random", gate=shape.gate,
               convert=meta.get("convert", "ffn"))
        model.load_state_dict(load_file(str(d / "model.safetensors")), strict=True)
        acms = acm_modules(model)
        offsets = meta.get("k_offset") or [0.0] * len(acms)  # saved before routing was recorded: argmax
        if len(offsets) != len(acms):
            raise ValueError(f"{len(offsets)} k_offset values for {len(acms)} modules")
        for a, o in zip(acms, offsets):
            a.routing, a.k_offset = meta.get("routing", "argmax"), float(o)
    except SearchKDError:
        raise
    except Exception as e:  # truncated safetensors, missing or renamed keys, another shape
        raise SearchKDError(f"{d}: corrupt converted model ({first_line(e)})") from None
    model.eval()
    return (model.to(device) if device is not None else model), meta
