"""``hf:DIR`` inputs that must not pass silently (issue 23 items 2 and 8): a folder whose files
lack some of the model's weights, and a non-BERT model whose loading transformers warns about."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from searchkd.errors import SearchKDError
from tests._text import need, write_text_setup, write_tokenizer


def test_a_folder_missing_ffn_weights_is_refused(tmp_path):
    need("transformers")
    from safetensors.torch import load_file, save_file

    from searchkd.teachers.text import load_text_teacher

    teacher, _ = write_text_setup(tmp_path, paragraphs=1)
    load_text_teacher(f"hf:{teacher}")  # whole: loads
    w = load_file(str(teacher / "model.safetensors"))
    save_file({k: v for k, v in w.items() if ".intermediate." not in k}, str(teacher / "model.safetensors"))
    with pytest.raises(SearchKDError, match="missing from its files.*would start random"):
        load_text_teacher(f"hf:{teacher}")


def test_a_non_bert_folder_is_one_line_without_transformers_warnings(tmp_path):
    need("transformers")
    from transformers import GPT2Config, GPT2Model

    d = tmp_path / "gpt2"
    d.mkdir()
    # bos/eos 50256 beyond a 100-word vocabulary: transformers warns about it on every load
    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=write_tokenizer(d), n_positions=64)).save_pretrained(d)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for argv in (["search", "--space", "bert-tiny", "--teacher", f"hf:{d}", "--budget", "2", "--out", str(tmp_path / "s")],
                 ["acm", "--model", f"hf:{d}", "--out", str(tmp_path / "a")]):
        p = subprocess.run([sys.executable, "-m", "searchkd", *argv], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 2 and p.stderr.startswith("searchkd: error:"), p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not (tmp_path / "s").exists() and not (tmp_path / "a").exists()

