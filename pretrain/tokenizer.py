"""Byte-level BPE tokenizer trained on a corpus's Parquet shards.

The shards are streamed one record batch at a time (memory stays flat on millions of
documents); the BPE trainer in ``tokenizers`` counts pairs on all cores. The result is
saved as a Hugging Face fast tokenizer, so ``AutoTokenizer.from_pretrained(out)`` loads it
and every exported model ships the same files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from corpus.config import ConfigError
from corpus.io import atomic_dir, remove_stale
from corpus.tokens import byte_level_bpe

EOS = "<|endoftext|>"


def corpus_shards(corpus: str | Path) -> list[Path]:
    """The corpus's Parquet shards in name order; DIR may be a run dir or its ``corpus/``."""
    d = Path(corpus)
    if not d.is_dir():
        raise ConfigError(f"{d}: corpus directory does not exist")
    shards = sorted(d.glob("*.parquet")) or sorted((d / "corpus").glob("*.parquet"))
    if not shards:
        raise ConfigError(f"{d}: no *.parquet shards (expected DIR/part-*.parquet or DIR/corpus/part-*.parquet)")
    for s in shards:
        names = pq.read_schema(s).names
        if "text" not in names:
            raise ConfigError(f"{s}: no 'text' column (columns: {', '.join(names)})")
    return shards


def iter_batches(shards: list[Path], columns: list[str], batch_size: int = 1024,
                 required: tuple[str, ...] = ("text",)) -> Iterator[dict[str, list]]:
    """Record batches as column lists, in shard then row order; rows with an empty ``required`` column are skipped."""
    for s in shards:
        f = pq.ParquetFile(s)
        cols = [c for c in columns if c in f.schema_arrow.names]
        for rb in f.iter_batches(batch_size=batch_size, columns=cols):
            d = rb.to_pydict()
            keep = [i for i in range(rb.num_rows) if all(d[c][i] for c in required)]
            yield {c: [d[c][i] for i in keep] for c in cols}


def corpus_hash(shards: list[Path]) -> str:
    """sha256 over the shards' names and bytes: names the exact corpus a model saw."""
    h = hashlib.sha256()
    for s in shards:
        h.update(s.name.encode() + b"\0")
        with open(s, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:16]


def tokenizer_hash(tok_dir: str | Path) -> str:
    """sha256 of tokenizer.json (vocabulary, merges, special tokens)."""
    return hashlib.sha256((Path(tok_dir) / "tokenizer.json").read_bytes()).hexdigest()[:16]


def train_tokenizer(corpus: str | Path, vocab_size: int, out: str | Path, min_frequency: int = 2) -> dict:
    """Train byte-level BPE on the corpus and save it as a Hugging Face tokenizer in ``out``."""
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257 + 1:
        raise ConfigError(f"--vocab-size {vocab_size}: must be at least 258 (256 bytes + end-of-text + 1 merge)")
    shards = corpus_shards(corpus)
    n_docs = sum(pq.ParquetFile(s).metadata.num_rows for s in shards)
    tok, trainer = byte_level_bpe(vocab_size, [EOS], min_frequency)  # EOS is id 0

    def texts():
        for b in iter_batches(shards, ["text"]):
            yield b["text"]

    tok.train_from_iterator(texts(), trainer=trainer, length=n_docs)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS)
    fast.model_max_length = 1 << 30  # set by the model, not the tokenizer
    out = Path(out)
    with atomic_dir(out) as tmp:
        fast.save_pretrained(tmp)
    remove_stale(out.parent, out.name)  # left by a killed run
    return {"out": str(out), "vocab_size": tok.get_vocab_size(), "documents": n_docs, "tokenizer_hash": tokenizer_hash(out)}


