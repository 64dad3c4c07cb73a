"""``corpus smoke-model DIR``: a tiny random-weight Llama-style model, made on the spot.

Its text is noise. It exists to try a recipe and the whole machinery (vLLM, transformers,
the gate, dedup, the budget loop, pretraining and eval) end to end on a CPU, offline,
before spending GPU hours. Nothing is downloaded: the tokenizer is a byte-level BPE
trained here on text that ships with Python, and the weights are random.

Shape: hidden 128, 2 layers, 2 heads of dim 64 (vLLM's CPU attention rejects head_dim 16),
vocab 512, context 4096. Measured here: vLLM (CPU) loads it in ~30 s and generates
64 prompts x 64 tokens in well under a second.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from corpus.tokens import byte_level_bpe

MARKER = "smoke-model.json"  # written into the directory: a run made with it is noise

# ChatML: the template vLLM's LLM.chat and transformers' apply_chat_template use.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _training_text() -> list[str]:
    """Python source and prose that ship with the interpreter: enough to learn 512 merges."""
    import collections
    import dataclasses
    import json
    import optparse as a  # a big module of Python and prose (argparse's predecessor)
    import textwrap

    return [inspect.getsource(m) for m in (a, collections, dataclasses, json, textwrap)]


def make_smoke_model(out: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok, trainer = byte_level_bpe(vocab_size, SPECIAL, min_frequency=1)
    tok.train_from_iterator(_training_text(), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )
    hf_tok.model_max_length = 4096
    hf_tok.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=4096,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    (out / MARKER).write_text('{"noise": true}\n')
    (out / "README.md").write_text(
        "# smoke model\n\nRandom weights and a tokenizer trained on Python's own sources, made by "
        "`corpus smoke-model`. Its text is noise: it exists to exercise the pipeline on a CPU.\n"
    )
    return out


def is_smoke_model(model: str | None) -> bool:
    """Whether ``model`` is a directory ``make_smoke_model`` wrote (its text is noise)."""
    return bool(model) and (Path(model) / MARKER).is_file()
