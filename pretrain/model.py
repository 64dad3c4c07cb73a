"""Model presets: Llama-style ``transformers`` configs from a CPU smoke size to phi-1's shape.

Vocabulary size and the end-of-text id come from the packed data's tokenizer; everything
else from a preset, optionally overridden by a YAML file of the same keys, or, to finetune,
from the ``config.json`` of an exported model (``from_pretrained``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from corpus.config import ConfigError, Located, build, load_yaml
from pretrain.tokenizer import tokenizer_hash


@dataclass
class ModelConfig:
    hidden_size: int = 256
    "width of the residual stream"
    num_layers: int = 4
    "transformer blocks"
    num_heads: int = 4
    "attention heads; head_dim = hidden_size / num_heads (vLLM's CPU backend needs >= 32, 64 is safe)"
    num_kv_heads: int = 0
    "key/value heads for grouped-query attention (0 = num_heads, plain multi-head)"
    intermediate_size: int = 768
    "SwiGLU MLP width (about 8/3 x hidden_size keeps the parameter count of a 4x GELU MLP)"
    seq_len: int = 256
    "training context length (max_position_embeddings)"
    tie_embeddings: bool = True
    "share input embedding and output head (saves vocab x hidden parameters on small models)"
    rope_theta: float = 10000.0
    "RoPE base"
    init_std: float = 0.02
    "normal init std of linear and embedding weights"

    def validate(self):
        for k in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "seq_len"):
            if getattr(self, k) <= 0:
                yield k, "must be positive"
        if self.num_heads > 0 and self.hidden_size % self.num_heads:
            yield "num_heads", f"must divide hidden_size ({self.hidden_size})"
        if self.num_kv_heads < 0 or (self.num_kv_heads and self.num_heads % self.num_kv_heads):
            yield "num_kv_heads", f"must be 0 or divide num_heads ({self.num_heads})"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


PRESETS: dict[str, ModelConfig] = {
    # ~3M parameters with an 8k vocabulary; trains on CPU in minutes. head_dim 64 so vLLM CPU serves it.
    "smoke": ModelConfig(256, 4, 4, 0, 768, 256, True),
    "20m": ModelConfig(384, 6, 6, 0, 1024, 1024, True),
    # GPT-2 small's shape (12 x 768, 12 heads).
    "125m": ModelConfig(768, 12, 12, 0, 2048, 2048, True),
    # GPT-2 medium's shape (24 x 1024, 16 heads): phi-1-small's size class (350M).
    "350m": ModelConfig(1024, 24, 16, 0, 2816, 2048, True),
    # phi-1's shape: 24 layers, width 2048, 32 heads (head_dim 64).
    "1.3b": ModelConfig(2048, 24, 32, 0, 5632, 2048, False),
}


def resolve(preset: str, overrides: str | None = None) -> ModelConfig:
    """The preset's config with the keys of the YAML file ``overrides`` replaced (validated)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (expected one of: {', '.join(PRESETS)})")
    base = dataclasses.asdict(PRESETS[preset])
    if overrides is None:
        return build(ModelConfig, base, Located(base, {}, f"preset {preset}"))
    located = load_yaml(overrides)
    if not isinstance(located.data, (dict, type(None))):
        raise ConfigError(f"{overrides}: expected a mapping of model config keys")
    return build(ModelConfig, {**base, **(located.data or {})}, located)


def hf_config(cfg: ModelConfig, vocab_size: int, eos_id: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
        max_position_embeddings=cfg.seq_len,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        initializer_range=cfg.init_std,
        rms_norm_eps=1e-5,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def from_pretrained(model_dir: str | Path, meta: dict) -> ModelConfig:
    """The config of a model exported by ``corpus pretrain`` (the inverse of ``hf_config``), after
    checking that it shares the packed data's tokenizer (``meta``: its ``meta.json``)."""
    from transformers import AutoConfig

    d = Path(model_dir)
    if not (d / "config.json").is_file():
        raise ConfigError(f"--init-from {d}: no config.json (expected a model exported by `corpus pretrain`, e.g. OUT/final)")
    hf = AutoConfig.from_pretrained(d)
    if hf.model_type != "llama":
        raise ConfigError(f"--init-from {d}: a {hf.model_type!r} model; expected a Llama model exported by `corpus pretrain`")
    if not (d / "tokenizer.json").is_file():
        raise ConfigError(f"--init-from {d}: no tokenizer.json to check against the packed data's tokenizer")
    mine = (tokenizer_hash(d), hf.vocab_size, hf.eos_token_id)
    theirs = (meta["tokenizer_hash"], meta["vocab_size"], meta["eos_id"])
    if mine != theirs:
        raise ConfigError(
            f"--init-from {d}: tokenizer {mine[0]} (vocabulary {mine[1]}, end-of-text id {mine[2]}) differs from the "
            f"packed data's {theirs[0]} (vocabulary {theirs[1]}, end-of-text id {theirs[2]}); pack with the model's "
            f"tokenizer: corpus pack --tokenizer {d}"
        )
    return ModelConfig(
        hidden_size=hf.hidden_size,
        num_layers=hf.num_hidden_layers,
        num_heads=hf.num_attention_heads,
        num_kv_heads=0 if hf.num_key_value_heads == hf.num_attention_heads else hf.num_key_value_heads,
        intermediate_size=hf.intermediate_size,
        seq_len=hf.max_position_embeddings,
        tie_embeddings=hf.tie_word_embeddings,
        rope_theta=hf.rope_parameters["rope_theta"],
        init_std=hf.initializer_range,
    )


def count_params(cfg: ModelConfig, vocab_size: int) -> int:
    """Parameters (tied embeddings counted once), computed without allocating weights."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        m = LlamaForCausalLM(hf_config(cfg, vocab_size, 0))
    return sum(p.numel() for p in m.parameters())
