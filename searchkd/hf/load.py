"""Reading what :mod:`searchkd.hf.export` writes (and any BERT directory), and registering
searchkd's BERT classes (:mod:`searchkd.hf.modeling`) with transformers. The lowest room of
:mod:`searchkd.hf`: teachers and ACM folders use it without importing the exporter (which
imports the SuperLM).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from searchkd.errors import SearchKDError, first_line

__all__ = ["register_hf", "load_exported", "umask_mode", "quiet", "acm_folder", "FORMAT", "META_FILE", "MODELING_FILE", "WEIGHTS_FILE"]

FORMAT = "searchkd-export/1"
META_FILE = "searchkd.json"
MODELING_FILE = "modeling_searchkd_bert.py"
#: what marks a folder saved by searchkd.supernets.acm.io.save_acm
ACM_FORMAT = "searchkd-acm/1"
ACM_MODEL_TYPE = "searchkd_acm"  # config.json's model_type: no transformers class claims it
WEIGHTS_FILE = "model.safetensors"
# copied from tokenizer_dir when present; one of _VOCAB (or a sentencepiece *.model) must be

def register_hf() -> None:
    """Register ``searchkd_bert`` (:mod:`searchkd.hf.modeling`) with transformers'
    ``AutoConfig``, ``AutoModel`` and ``AutoModelForSequenceClassification``; calling it again
    changes nothing."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    from searchkd.hf import modeling as m

    AutoConfig.register(m.MODEL_TYPE, m.SearchKDBertConfig, exist_ok=True)
    AutoModel.register(m.SearchKDBertConfig, m.SearchKDBertModel, exist_ok=True)
    AutoModelForSequenceClassification.register(m.SearchKDBertConfig, m.SearchKDBertForSequenceClassification,
                                                exist_ok=True)


def load_exported(path: str | Path) -> Any:
    """The transformers model (eval mode) of a directory :func:`export_student` wrote — or
    any BERT directory; :class:`SearchKDError` when it is missing, incomplete or corrupt."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise SearchKDError(f"exported model {d}: " + ("not a directory" if d.exists() else "directory not found"))
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SearchKDError(f"exported model {d}: no config.json") from None
    except (OSError, ValueError) as e:
        raise SearchKDError(f"exported model {d}: config.json is unreadable ({type(e).__name__})") from None
    if not (d / WEIGHTS_FILE).is_file():
        raise SearchKDError(f"exported model {d}: no {WEIGHTS_FILE}")
    try:
        from transformers import AutoModel
    except ImportError:
        raise SearchKDError("loading an exported model needs transformers: install searchkd[nlp]") from None
    if isinstance(config, dict) and config.get("model_type") == "searchkd_bert":
        register_hf()
    try:
        with quiet():  # never runs the directory's own code: searchkd_bert comes from register_hf()
            model, info = AutoModel.from_pretrained(str(d), local_files_only=True, trust_remote_code=False,
                                                    output_loading_info=True)
    except Exception as e:  # bad JSON fields, truncated safetensors, shape mismatch, unknown model_type ...
        raise SearchKDError(f"exported model {d}: cannot load it ({first_line(e)})") from None
    bad = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        what = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, v[:3]))}{' …' if len(v) > 3 else ''}"
                         for k, v in bad.items())
        raise SearchKDError(f"exported model {d}: the weights do not match config.json ({what})")
    return model.eval()


def umask_mode(*paths: Path) -> None:
    """Give files the mode ``open`` gives a new file (0644 under the usual umask): safetensors
    writes its files 0600, unlike every other file of a saved model."""
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        os.chmod(p, 0o666 & ~mask)


@contextmanager
def quiet() -> Iterator[None]:
    """No transformers progress bars or warnings (a library call stays quiet; the CLI shows its
    own progress, and a bad model is one line of searchkd's). Callers that load weights check
    ``output_loading_info`` themselves, since transformers' report of missing weights is hidden."""
    from transformers.utils import logging as hf_logging

    shown, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if shown:
            hf_logging.enable_progress_bar()


def acm_folder(path: str | Path) -> str | None:
    """A one-line description when ``path`` is a folder written by :func:`save_acm` (by
    ``config.json``'s ``model_type``, or, for folders saved before it had its own, by
    ``acm.json``), else None."""
    import json

    d = Path(path)
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    try:
        meta = json.loads((d / "acm.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    is_acm = isinstance(meta, dict) and meta.get("format") == ACM_FORMAT
    if not (is_acm or (isinstance(config, dict) and config.get("model_type") == ACM_MODEL_TYPE)):
        return None
    budget = meta.get("budget") if isinstance(meta, dict) else None
    base = (meta.get("base") or {}).get("name") if isinstance(meta, dict) else None
    what = "a model converted by `searchkd acm`" + (f" (budget {budget:g})" if isinstance(budget, (int, float)) else "")
    return (f"{what}{f' from {base}' if base else ''}: its FFN blocks are adaptive computation modules, not a plain "
            f"BERT; reopen it with searchkd.api.load_acm(DIR)")
