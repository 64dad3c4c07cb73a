"""Tokenize a corpus into flat token files: ``train.bin``, ``val.bin``, ``meta.json``.

Each document becomes its tokens followed by the end-of-text token; the files are the
concatenation in shard then row order (uint16 when the vocabulary fits, else uint32), read
with ``np.memmap``. A document goes to validation when the hash of its id falls below
``val_fraction``: the split depends on the document alone, never on its position, so it
is stable when the corpus grows and a document can never be in both splits.

``format="exercises"`` packs exercise records (phi-1's CodeExercises) for finetuning: each
document is the tokens of its ``statement`` (signature + docstring), then of its ``solution``,
then end-of-text, each part tokenized on its own (as a prompt is at inference). A parallel
``train.mask.bin`` / ``val.mask.bin`` (uint8, one byte per token) marks the tokens the loss is
on: 1 for the solution and its end-of-text, 0 for the statement.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import xxhash

from corpus.config import ConfigError
from corpus.io import atomic_dir, atomic_path, read_marker, remove_stale, write_marker
from corpus.progress import Progress
from pretrain.tokenizer import EOS, corpus_hash, corpus_shards, iter_batches, tokenizer_hash

META = "meta.json"
# The columns each format tokenizes, in order; the first one of exercises is the prompt.
FORMATS = {"text": ("text",), "exercises": ("statement", "solution")}


def is_val(doc_key: str, val_fraction: float) -> bool:
    """The split rule: xxh64(id) as a fraction of 2**64 below ``val_fraction``."""
    return xxhash.xxh64_intdigest(doc_key.encode()) < val_fraction * 2**64


def load_meta(data: str | Path) -> dict:
    meta = read_marker(Path(data) / META)
    if meta is None:
        raise ConfigError(f"{data}: no {META}; create it with `corpus pack`")
    return meta


def pack(corpus: str | Path, tokenizer: str | Path, out: str | Path, val_fraction: float = 0.01, batch_size: int = 1024,
         format: str = "text") -> dict:
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    if format not in FORMATS:
        raise ConfigError(f"--format {format}: expected one of: {', '.join(FORMATS)}")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    tok_path = Path(tokenizer) / "tokenizer.json"
    if not tok_path.exists():
        raise ConfigError(f"{tokenizer}: no tokenizer.json; create it with `corpus tokenizer`")
    tok = Tokenizer.from_file(str(tok_path))
    eos = tok.token_to_id(EOS)
    if eos is None:
        raise ConfigError(f"{tokenizer}: the tokenizer has no {EOS} token")
    vocab = tok.get_vocab_size()
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    shards = corpus_shards(corpus)
    fields, masked = FORMATS[format], format == "exercises"
    for s in shards:
        columns = pq.read_schema(s).names
        if missing := [c for c in fields if c not in columns]:
            raise ConfigError(f"{s}: no {' or '.join(map(repr, missing))} column for --format {format} (columns: {', '.join(columns)})")
    total_docs = sum(_num_rows(s) for s in shards)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)  # the old pack is invalid from here until the new meta lands
    names = ["train.bin", "val.bin", "train.mask.bin", "val.mask.bin"]
    for name in names[2:]:
        (out / name).unlink(missing_ok=True)  # an older exercises pack's masks
    files = names if masked else names[:2]
    tokens = {"train": 0, "val": 0}
    docs = {"train": 0, "val": 0}
    solution = {"train": 0, "val": 0}
    # A line per ~2% of the documents in a log (and per batch on a terminal).
    every = max(batch_size, total_docs // 50)
    with ExitStack() as stack, Progress("pack", total=total_docs, unit="docs", every=every) as bar:
        # Each file streams into a temporary file, renamed into place only when all went well.
        fh = {}
        for name in files:
            tmp = stack.enter_context(atomic_path(out / name))
            fh[name] = stack.enter_context(open(tmp, "wb"))  # closed before its rename
        for b in iter_batches(shards, ["id", *fields], batch_size, required=fields):
            keys = b.get("id") or b[fields[0]]
            # encode_batch tokenizes the batch on all cores (Rust threads).
            encoded = [tok.encode_batch(b[c], add_special_tokens=False) for c in fields]
            for key, *parts in zip(keys, *encoded):
                split = "val" if is_val(key, val_fraction) else "train"
                ids = np.asarray([i for p in parts for i in p.ids] + [eos], dtype=dtype)
                fh[f"{split}.bin"].write(ids.tobytes())
                tokens[split] += len(ids)
                docs[split] += 1
                if masked:
                    mask = np.ones(len(ids), dtype=np.uint8)
                    mask[: len(parts[0].ids)] = 0  # the statement: context, no loss
                    fh[f"{split}.mask.bin"].write(mask.tobytes())
                    solution[split] += len(ids) - len(parts[0].ids)
            bar.update(len(keys), f"{tokens['train'] + tokens['val']:,} tokens")
        if masked and not docs["train"] + docs["val"]:  # inside the with: nothing is renamed into place
            raise ConfigError(f"{corpus}: no document has both a statement and a solution: --format exercises packs a corpus "
                              "built with gate.exercise (e.g. --recipe exercises)")
    tok_out = out / "tokenizer"
    if tok_out.resolve() != Path(tokenizer).resolve():
        with atomic_dir(tok_out) as tmp:
            shutil.copytree(tokenizer, tmp, dirs_exist_ok=True)
    for name in (*names, "tokenizer"):
        remove_stale(out, name)  # left by a killed pack
    meta = {
        "format": format,
        "tokens": tokens,
        "documents": docs,
        "dtype": np.dtype(dtype).name,
        "vocab_size": vocab,
        "eos_id": eos,
        "val_fraction": val_fraction,
        "split_rule": "xxh64(id) < val_fraction * 2**64 -> val",
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "corpus_hash": corpus_hash(shards),
        "corpus": str(Path(corpus).resolve()),
        "shards": [s.name for s in shards],
    }
    if masked:
        meta["solution_tokens"] = solution  # mask = 1: the tokens the finetuning loss is on
    # Written last: a directory with meta.json is a complete pack.
    write_marker(out / META, meta)
    return meta


def _num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows
