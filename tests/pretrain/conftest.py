"""Shared fixtures for tests/pretrain: a small synthetic corpus written as `corpus build` writes it
(runs/NAME/corpus/part-*.parquet with the record schema), a tokenizer trained on it, its packed
token files, and a tiny model config (head_dim 64 so vLLM's CPU backend accepts it)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from corpus.io import write_parquet
from corpus.records import record_schema

VOCAB = 512
TINY = "hidden_size: 64\nnum_layers: 2\nnum_heads: 1\nintermediate_size: 128\nseq_len: 64\n"


def pytest_configure(config):
    config.addinivalue_line("markers", "vllm: starts a vLLM engine (~30 s); run alone with -m vllm")


def make_docs(n: int, seed: int = 0) -> list[str]:
    """Textbook-like extracts: prose plus a small Python function, with some non-ASCII text."""
    r = random.Random(seed)
    nouns = ["list", "matrix", "graph", "queue", "string", "tree", "vector", "table"]
    verbs = ["sorts", "reverses", "counts", "filters", "sums", "merges", "scales", "splits"]
    extras = ["", " Voilà: café, naïve.", " 例えば: 行列.", " π ≈ 3.14159 — ok ✓."]
    docs = []
    for i in range(n):
        noun, verb, k = r.choice(nouns), r.choice(verbs), r.randint(2, 9)
        docs.append(
            f"# {verb.title()} a {noun}\n\nThis section {verb} a {noun} of size {k}.{r.choice(extras)}\n\n"
            f"```python\ndef {verb}_{noun}_{i}(xs):\n    out = []\n    for x in xs[:{k}]:\n"
            f"        out.append(x * {k})\n    return out\n```\n\nThe function {verb}_{noun}_{i} returns a new {noun}.\n"
        )
    return docs


def write_corpus(run_dir, docs: list[str], per_shard: int = 150):
    schema = record_schema([])
    for s in range(0, len(docs), per_shard):
        rows = [{"id": f"abc123-{i}", "index": i, "text": t} for i, t in enumerate(docs[s : s + per_shard], start=s)]
        write_parquet(pa.Table.from_pylist(rows, schema=schema), run_dir / "corpus" / f"part-{s // per_shard:05d}.parquet")
    return run_dir / "corpus"


@pytest.fixture(scope="session")
def docs():
    return make_docs(400)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory, docs):
    return write_corpus(tmp_path_factory.mktemp("runs") / "demo", docs)


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory, corpus_dir):
    from pretrain.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(corpus_dir, VOCAB, out)
    return out


@pytest.fixture(scope="session")
def packed(tmp_path_factory, corpus_dir, tok_dir):
    from pretrain.pack import pack

    out = tmp_path_factory.mktemp("packed")
    pack(corpus_dir, tok_dir, out, val_fraction=0.1)
    return out


@pytest.fixture(scope="session")
def tiny_yaml(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(TINY)
    return p


def _read_log(out) -> list[dict]:
    import json

    return [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def read_log():
    """read_log(out) -> the entries of out/train_log.jsonl."""
    return _read_log


@pytest.fixture(scope="session")
def tiny_args(packed, tiny_yaml):
    """tiny_args(out, **overrides) -> TrainArgs for the tiny model on the packed corpus."""
    from pretrain.train import TrainArgs

    def make(out, **kw):
        base = dict(data=str(packed), out=str(out), model_config=str(tiny_yaml), micro_batch=8, lr=3e-3, warmup_steps=10, log_every=1)
        return TrainArgs(**{**base, **kw})

    return make


@pytest.fixture(scope="session")
def train1():
    """train(args) on one thread. On this 2-core machine, shared with other test runs, the tiny
    model took 58 s for 100 steps with 2 threads and 9 s with 1 (thread contention)."""
    import torch

    from pretrain.train import train

    def run(args):
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return train(args)
        finally:
            torch.set_num_threads(n)

    return run


@pytest.fixture(scope="session")
def one_thread_env():
    """Environment for subprocesses: one thread each (see train1)."""
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, tiny_args, train1):
    """100 steps of the tiny model; its export feeds the transformers and vLLM tests."""
    out = tmp_path_factory.mktemp("smoke")
    assert train1(tiny_args(out, max_steps=100, eval_every=50)) == 0
    return out
