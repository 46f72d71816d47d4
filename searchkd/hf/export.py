"""Export a BERT student as a Hugging Face model directory, and load one back.

:func:`export_student` writes one :class:`~searchkd.spaces._bert_net.BertNet` shape (given as
the net itself, or as a trained :class:`~searchkd.supernets.superlm.SuperLM` and an arch) as a
directory that ``transformers.AutoModel.from_pretrained`` loads into a model computing the
same ``last_hidden_state`` and ``pooler_output``, with the teacher's tokenizer files beside it.

Two parameterisations, chosen by the shape:

(a) **stock BERT**, when the shape is one a ``BertConfig`` can hold: Q/K/V width
    ``heads × head_dim`` equal to ``hidden`` (then ``hidden % heads == 0`` too), e.g.
    ``L6-H384-A12-R4.0``. ``model_type`` "bert", ``architectures`` ["BertModel"]: no custom
    code, loadable by anything that reads BERT (sentence-transformers, ONNX exporters …).
(b) **searchkd_bert**, for every other shape, e.g. ``L4-H128-A9-R2.0`` (9 heads of 10 = 90-wide
    Q/K/V beside a 128-wide hidden state): :mod:`searchkd.hf.modeling` copied into the
    directory as ``modeling_searchkd_bert.py`` — transformers' ``BertModel`` (and
    ``BertForSequenceClassification``, to fine-tune the student) with one more config field,
    ``attention_head_size`` — and ``auto_map`` pointing at it, so that
    ``AutoModel.from_pretrained(dir, trust_remote_code=True)`` loads it where searchkd is not
    installed (transformers 5 needed). Where it is, :func:`register_hf` registers the same
    classes with ``AutoConfig``/``AutoModel``/``AutoModelForSequenceClassification``, after
    which no ``trust_remote_code`` is needed. ``AutoTokenizer.from_pretrained(dir)`` reads
    config.json too: it wants the same ``trust_remote_code=True`` or :func:`register_hf`
    (without either, transformers asks before running the directory's code, or falls back to
    the tokenizer_config.json alone where it cannot ask).

The stock route is the default wherever it applies (there is no switch): a student that plain
BERT can hold is worth more as plain BERT, and nothing is gained by asking its users to run
code from a directory. :func:`load_exported`, searchkd's own loader, never runs a directory's
code (``trust_remote_code=False``): it calls :func:`register_hf` and loads with searchkd's
installed copy of the classes, the code that was tested with this searchkd.

A directory holds ``config.json`` (``dtype`` float32: transformers 5's name for
``torch_dtype``), ``model.safetensors``, the tokenizer files when a
``tokenizer_dir`` was given, ``modeling_searchkd_bert.py`` for (b), and ``searchkd.json``: the
arch, space, teacher id, searchkd and transformers versions, the route, the shape and whether
the pooler was trained. A student without a pooler (a SuperLM's subnets have none) gets the
pooler transformers' BERT initialises from seed 0, so that its ``pooler_output`` is
deterministic and every weight is in the file, but untrained. Before the directory appears
under its name it is reloaded and checked to reproduce the student's outputs; it is written
into a hidden sibling and renamed at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from searchkd.errors import SearchKDError, first_line
from searchkd.hf.load import FORMAT, META_FILE, MODELING_FILE, load_exported, quiet, register_hf, umask_mode
from searchkd.io import atomic_path, write_json

__all__ = ["export_student", "load_exported", "register_hf", "is_stock_bert", "FORMAT", "META_FILE", "MODELING_FILE"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.txt", "vocab.json", "merges.txt")
_VOCAB = ("tokenizer.json", "vocab.txt", "vocab.json")
# max |exported − student| accepted by the check after writing (float32 on the CPU: ~1e-6)
_TOLERANCE = 1e-4


def is_stock_bert(shape: Any) -> bool:
    """Whether a :class:`~searchkd.spaces._bert_net.BertShape` fits a stock ``BertConfig``."""
    return shape.qkv == shape.hidden and shape.hidden % shape.heads == 0


def export_student(net_or_superlm: Any, arch: str, out_dir: str | Path, *, space: str,
                   tokenizer_dir: str | Path | None, teacher_id: str | None = None) -> Path:
    """Write the student ``arch`` as a Hugging Face directory (see the module docstring).

    Args:
        net_or_superlm: a ``BertNet`` of ``arch``'s shape (or of a larger shape it is sliced
            from), or a ``SuperLM`` whose :meth:`~searchkd.supernets.superlm.SuperLM.extract`
            gives it.
        arch: ``L…-H…-A…-R…``.
        out_dir: the directory to create; an existing one must be empty.
        space: the space ``arch`` comes from (recorded; a SuperLM's must match).
        tokenizer_dir: the teacher's tokenizer (``searchkd.teachers.text.teacher_dir``), or None.
        teacher_id: recorded, e.g. ``TextTeacher.info.id``.

    Returns:
        ``out_dir`` as an absolute path.
    """
    import torch
    import transformers

    from searchkd._version import __version__
    from searchkd.spaces.bert import parse_arch

    out = Path(out_dir).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SearchKDError(f"export: {out} already exists and is not an empty directory; choose a new one")
    parsed = parse_arch(arch, space)
    shape = parsed.shape()
    net = _student(net_or_superlm, arch, shape, space)
    stock = is_stock_bert(shape)
    tmp = atomic_path(out)
    shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a killed export of this pid
    try:
        tmp.mkdir()
        weights = {k: v.detach().to("cpu", torch.float32) for k, v in net.state_dict().items()}
        with quiet():
            _hf_model(net.config, weights, stock).save_pretrained(tmp)
        umask_mode(*tmp.glob("*.safetensors"))
        if not stock:
            shutil.copyfile(Path(__file__).with_name("modeling.py"), tmp / MODELING_FILE)
        if tokenizer_dir is not None:
            _copy_tokenizer(Path(tokenizer_dir).expanduser(), tmp, net.config.vocab_size)
        write_json(tmp / META_FILE, {
            "format": FORMAT, "arch": str(parsed), "space": space, "teacher": teacher_id,
            "searchkd_version": __version__, "transformers_version": transformers.__version__,
            "route": "bert" if stock else "searchkd_bert",
            "shape": {"layers": shape.layers, "hidden": shape.hidden, "heads": shape.heads,
                      "head_dim": shape.head_dim, "ffn": shape.ffn},
            "pooler": "trained" if net.pooler is not None else "initialised (seed 0), untrained",
            "tokenizer": tokenizer_dir is not None})
        with torch.no_grad():
            _check_outputs(net, weights, load_exported(tmp), out)
        try:
            os.rename(tmp, out)  # replaces an empty out_dir; fails on a non-empty one
        except OSError as e:
            raise SearchKDError(f"export: cannot move the finished export to {out} ({e.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _student(obj: Any, arch: str, shape: Any, space: str) -> Any:
    """The standalone BertNet of ``shape`` that ``obj`` holds."""
    from searchkd.spaces._bert_net import BertNet, extract

    if not isinstance(obj, BertNet) and callable(getattr(obj, "extract", None)) and hasattr(obj, "space"):
        # a SuperLM (duck-typed: the exporter sits below the supernets and never imports them)
        if obj.space.name != space:
            raise SearchKDError(f"export: the SuperLM was trained on space {obj.space.name!r}, not {space!r}")
        return obj.extract(arch)
    if not isinstance(obj, BertNet):
        raise SearchKDError(f"export: expected a BertNet or a SuperLM, got {type(obj).__name__}")
    if obj.config.shape == shape:
        return obj
    if not shape.fits_in(obj.config.shape):
        raise SearchKDError(f"export: {arch} does not fit in the given BertNet ({obj.config.shape})")
    return extract(obj, shape)


def _hf_model(c: Any, weights: dict[str, Any], stock: bool) -> Any:
    """A transformers BERT of the ``BertNetConfig`` ``c`` holding ``weights``."""
    import torch

    s = c.shape
    kwargs = dict(vocab_size=c.vocab_size, hidden_size=s.hidden, num_hidden_layers=s.layers,
                  num_attention_heads=s.heads, intermediate_size=s.ffn, hidden_act="gelu",
                  hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout,
                  max_position_embeddings=c.max_position, type_vocab_size=c.type_vocab,
                  layer_norm_eps=c.layer_norm_eps, pad_token_id=0, dtype="float32")
    if stock:
        from transformers import BertConfig as Config, BertModel as Model
    else:
        from searchkd.hf.modeling import SearchKDBertConfig as Config, SearchKDBertModel as Model

        kwargs.update(attention_head_size=s.head_dim, auto_map={
            auto: f"{MODELING_FILE[:-3]}.{name}" for auto, name in (
                ("AutoConfig", "SearchKDBertConfig"), ("AutoModel", "SearchKDBertModel"),
                ("AutoModelForSequenceClassification", "SearchKDBertForSequenceClassification"))})
    config = Config(**kwargs)
    config.architectures = [Model.__name__]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the pooler of a student without one; the caller's RNG is left alone
        model = Model(config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - ({"pooler.dense.weight", "pooler.dense.bias"} if not c.pooler else set()):
        raise RuntimeError(f"BertNet and transformers' BERT disagree on names: missing {missing}, unexpected {unexpected}")
    return model.eval()


def _copy_tokenizer(src: Path, dst: Path, vocab_size: int) -> None:
    """Copy ``src``'s tokenizer files into ``dst`` and check that AutoTokenizer reads them."""
    if not src.is_dir():
        raise SearchKDError(f"export: tokenizer_dir {src} is not a directory")
    files = [f for f in sorted(src.iterdir()) if f.is_file() and (f.name in _TOKENIZER_FILES or f.suffix == ".model")]
    if not any(f.name in _VOCAB or f.suffix == ".model" for f in files):
        raise SearchKDError(f"export: {src} holds no tokenizer ({', '.join(_VOCAB)} or a sentencepiece .model)")
    for f in files:
        shutil.copyfile(f, dst / f.name)
    from transformers import AutoTokenizer

    register_hf()  # AutoTokenizer reads config.json too: a searchkd_bert one must not ask to run its code
    try:
        settings = json.loads((dst / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        settings = {}
    try:
        if not (isinstance(settings, dict) and settings.get("tokenizer_class")):
            # without it AutoTokenizer would go by config.json's model_type, unknown for searchkd_bert
            AutoTokenizer.from_pretrained(str(src), local_files_only=True, trust_remote_code=False).save_pretrained(str(dst))
        tokenizer = AutoTokenizer.from_pretrained(str(dst), local_files_only=True, trust_remote_code=False)
    except Exception as e:
        raise SearchKDError(f"export: {src} holds no usable tokenizer ({first_line(e)})") from None
    top = max(tokenizer.get_vocab().values(), default=-1)
    if top >= vocab_size:
        raise SearchKDError(f"export: the tokenizer of {src} has token id {top}, the student only {vocab_size} embeddings")


def _check_outputs(net: Any, weights: dict[str, Any], model: Any, out: Path) -> None:
    """Refuse an export whose reloaded ``model`` does not compute what ``net`` (as the float32
    ``weights`` on the CPU) computes."""
    import torch

    from searchkd.spaces._bert_net import BertNet

    c = net.config
    p = next(net.parameters())
    if (p.dtype, p.device.type) != (torch.float32, "cpu"):
        with torch.random.fork_rng(devices=[]):
            net = BertNet(c)
        net.load_state_dict(weights)
    g = torch.Generator().manual_seed(0)
    t = min(16, c.max_position)
    ids = torch.randint(1, max(c.vocab_size, 2), (2, t), generator=g) % c.vocab_size
    mask = torch.ones_like(ids)
    mask[1, t // 2:] = 0
    was = net.training
    net.eval()
    try:
        ours = net(ids, mask)
    finally:
        net.train(was)
    theirs = model(input_ids=ids, attention_mask=mask)
    pairs = [(ours.last_hidden_state, theirs.last_hidden_state)]
    if ours.pooler_output is not None:
        pairs.append((ours.pooler_output, theirs.pooler_output))
    diff = max(float((a - b).abs().max()) for a, b in pairs)
    if not diff <= _TOLERANCE:
        raise SearchKDError(f"export: the written model does not reproduce the student (max difference {diff:.2e}) "
                            f"under this transformers; nothing was written to {out}")
