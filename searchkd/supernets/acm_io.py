"""Saving and reopening a model converted by :func:`searchkd.supernets.acm.acmize`: a
``save_pretrained``-style directory (``config.json`` of the base model, ``acm.json`` with the
ACM shape, the base model's id and what the caller adds, ``model.safetensors``, the tokenizer
files), written to a temporary sibling and renamed, so a directory is whole or absent."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch.nn as nn

from searchkd.errors import SearchKDError, first_line
from searchkd.supernets.acm import ACMShape, acm_modules, acmize

__all__ = ["save_acm", "load_acm"]

_FORMAT = "searchkd-acm/1"


def save_acm(model: nn.Module, out_dir: str | Path, *, base: dict[str, Any], tokenizer_dir: str | Path | None = None,
             extra: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir`` (``config.json`` of the base model, ``acm.json``, ``model.safetensors``,
    the tokenizer files) through a temporary directory renamed into place."""
    import shutil

    from safetensors.torch import save_file

    from searchkd.io import write_json

    acms = acm_modules(model)
    if not acms:
        raise SearchKDError("save_acm: the model has no ACMs")
    target = Path(out_dir)
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    getattr(model, "config").to_json_file(str(tmp / "config.json"))
    write_json(tmp / "acm.json", {"format": _FORMAT, "shape": asdict(acms[0].shape), "layers": len(acms),
                                  "base": base, **(extra or {})})
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    if tokenizer_dir is not None:
        for f in Path(tokenizer_dir).iterdir():
            if f.is_file() and (f.name.startswith(("tokenizer", "vocab", "special_tokens")) or f.suffix == ".model"):
                shutil.copy2(f, tmp / f.name)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def load_acm(path: str | Path, *, base_id: str | None = None, device: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """A converted model saved by :func:`save_acm` (eval mode) and its ``acm.json``.

    Args:
        base_id: refuse a model converted from another base model (its teacher id).
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
    if base_id is not None and meta.get("base", {}).get("id") != base_id:
        raise SearchKDError(f"{d}: converted from another base model ({meta.get('base', {}).get('id')!r}, "
                            f"not {base_id!r})")
    try:
        import transformers
        from safetensors.torch import load_file

        from searchkd.export import register_hf

        register_hf()  # a converted AutoDistil student (searchkd_bert)
        config = transformers.AutoConfig.from_pretrained(str(d), local_files_only=True)
        model = transformers.AutoModel.from_config(config)
        shape = ACMShape(**meta["shape"])
        acmize(model, shape.learners, gate_hidden=shape.gate_hidden, init="random")
        model.load_state_dict(load_file(str(d / "model.safetensors")), strict=True)
    except SearchKDError:
        raise
    except Exception as e:  # truncated safetensors, missing or renamed keys, another shape
        raise SearchKDError(f"{d}: corrupt converted model ({first_line(e)})") from None
    model.eval()
    return (model.to(device) if device is not None else model), meta
