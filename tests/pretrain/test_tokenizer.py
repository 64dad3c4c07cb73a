import json

import pytest

from corpus.config import ConfigError
from pretrain.tokenizer import EOS, train_tokenizer

VOCAB = 512  # conftest.VOCAB


def test_round_trip_and_hf_load(tok_dir, docs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    assert len(tok) == VOCAB
    assert tok.eos_token == EOS and tok.convert_tokens_to_ids(EOS) == 0
    unseen = ["x = 'Ωmega'  # 🐍 never in the corpus\n\ttabs and  spaces\r\n", ""]
    for text in docs[:50] + unseen:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    # BPE learned merges: far fewer tokens than bytes on corpus text.
    sample = docs[0]
    assert len(tok.encode(sample)) < len(sample.encode()) / 2
    # The end-of-text token is one id, not split into pieces.
    assert tok.encode(EOS, add_special_tokens=False) == [0]


def test_deterministic(tmp_path, corpus_dir, tok_dir):
    train_tokenizer(corpus_dir, VOCAB, tmp_path / "again")
    assert json.loads((tmp_path / "again" / "tokenizer.json").read_text()) == json.loads((tok_dir / "tokenizer.json").read_text())


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="no \\*.parquet"):
        train_tokenizer(tmp_path, VOCAB, tmp_path / "t")
    with pytest.raises(ConfigError, match="does not exist"):
        train_tokenizer(tmp_path / "missing", VOCAB, tmp_path / "t")
