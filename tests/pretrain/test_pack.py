import json

import numpy as np
import pytest

from corpus.config import ConfigError
from pretrain.pack import is_val, pack


def _segments(tokens: np.ndarray, eos: int) -> list[list[int]]:
    cut = np.flatnonzero(tokens == eos)
    assert len(tokens) and cut[-1] == len(tokens) - 1, "every document ends with end-of-text"
    return [seg.tolist() for seg in np.split(tokens, cut + 1)[:-1]]


def test_round_trip_and_disjoint_split(packed, tok_dir, docs):
    from tokenizers import Tokenizer

    meta = json.loads((packed / "meta.json").read_text())
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    assert meta["dtype"] == "uint16" and meta["eos_id"] == 0
    got = {}
    for split in ("train", "val"):
        tokens = np.fromfile(packed / f"{split}.bin", dtype=np.uint16)
        assert len(tokens) == meta["tokens"][split]
        segs = _segments(tokens, meta["eos_id"])
        assert len(segs) == meta["documents"][split]
        got[split] = [tok.decode(s) for s in segs]
    # Each split holds exactly its documents, in corpus order, decoding to the original text.
    ids = [f"abc123-{i}" for i in range(len(docs))]
    assert got["val"] == [d for d, i in zip(docs, ids) if is_val(i, 0.1)]
    assert got["train"] == [d for d, i in zip(docs, ids) if not is_val(i, 0.1)]
    assert 20 <= len(got["val"]) <= 60  # ~10% of 400
    assert not set(got["val"]) & set(got["train"])
    assert (packed / "tokenizer" / "tokenizer.json").exists()


def test_deterministic(tmp_path, packed, corpus_dir, tok_dir):
    meta = pack(corpus_dir, tok_dir, tmp_path, val_fraction=0.1)
    for f in ("train.bin", "val.bin"):
        assert (tmp_path / f).read_bytes() == (packed / f).read_bytes()
    assert meta["corpus_hash"] == json.loads((packed / "meta.json").read_text())["corpus_hash"]


def test_split_is_per_document():
    # The split of a document depends on its id alone, so a corpus that grows keeps old assignments.
    assert [is_val(f"r-{i}", 0.5) for i in range(100)] == [is_val(f"r-{i}", 0.5) for i in range(100)]
    assert sum(is_val(f"r-{i}", 0.5) for i in range(2000)) in range(900, 1100)
    assert not any(is_val(f"r-{i}", 0.0) for i in range(100))


def test_errors(tmp_path, corpus_dir, tok_dir):
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        pack(corpus_dir, tmp_path, tmp_path / "o")
    with pytest.raises(ConfigError, match="val-fraction"):
        pack(corpus_dir, tok_dir, tmp_path / "o", val_fraction=1.5)


def test_cli(tmp_path, corpus_dir, capsys):
    from corpus.cli import main

    run_dir = corpus_dir.parent  # `--corpus` takes the run dir or its corpus/
    assert main(["tokenizer", "--corpus", str(run_dir), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 0
    assert json.loads(capsys.readouterr().out)["vocab_size"] == 300
    assert main(["pack", "--corpus", str(run_dir), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "p"),
                 "--val-fraction", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["documents"] == {"train": 400, "val": 0} and out["tokens"]["val"] == 0
    assert main(["pack", "--corpus", str(tmp_path / "nope"), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "q")]) == 2
    assert "does not exist" in capsys.readouterr().err
