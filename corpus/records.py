"""The one record schema every stage reads and writes (DESIGN.md, "Record").

A row in ``generated/chunk-*.parquet`` is one prompt; a row in ``corpus/part-*.parquet``
is one accepted document. The schema is explicit (never inferred from the first row)
so every chunk of every run has the same columns and types.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.config import ConfigError
from corpus.io import write_parquet, write_text

# Columns before the per-recipe axis columns, then after them.
_HEAD = [
    pa.field("id", pa.string(), nullable=False),  # "<recipe hash>-<index>"
    pa.field("index", pa.int64(), nullable=False),  # prompt index i
    pa.field("text", pa.string()),  # the completion (null when the request failed)
    pa.field("n_tokens", pa.int64()),  # by the recipe's counting tokenizer
    pa.field("topic", pa.string()),  # "Branch > Sub > Leaf"
    pa.field("audience", pa.string()),
]
_TAIL = [
    pa.field("prompt", pa.string()),
    pa.field("outline", pa.string()),  # the intermediate, when the recipe has an outline stage
    pa.field("model", pa.string()),
    pa.field("engine", pa.string()),
    pa.field("temperature", pa.float64()),
    pa.field("top_p", pa.float64()),
    pa.field("seed", pa.int64()),  # the request's sampling seed
    pa.field("finish_reason", pa.string()),  # "stop", "length", or "error"
    pa.field("prompt_tokens", pa.int64()),  # by the teacher's tokenizer
    pa.field("completion_tokens", pa.int64()),
    pa.field("error", pa.string()),  # why a request failed after its retries
    pa.field("gate", pa.string()),  # "accepted" or the first failing check
    pa.field("gate_detail", pa.string()),
    pa.field("n_snippets", pa.int32()),
    pa.field("snippets_ok", pa.int32()),  # snippets that parsed and ran cleanly
    pa.field("statement", pa.string()),  # exercises (gate.exercise): signature + docstring,
    pa.field("solution", pa.string()),  # the function's body after its docstring,
    pa.field("tests", pa.string()),  # and the asserts that call it
    pa.field("dup_of", pa.string()),  # id of the kept near/exact duplicate
    pa.field("contaminated_by", pa.list_(pa.string())),  # benchmark task ids
]


def record_schema(axes: Iterable[str] = ()) -> pa.Schema:
    """The record schema for a recipe whose extra axes are ``axes`` (one string column each)."""
    axis_fields = [pa.field(a, pa.string()) for a in axes]
    return pa.schema(_HEAD + axis_fields + _TAIL)


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file."""
    with path.open() as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not valid JSON: {e.msg}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{n}: expected a JSON object per line")
            yield n, row


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if path.suffix not in (".parquet", ".jsonl", ".json"):
        raise ConfigError(f"{path}: expected a .parquet or .jsonl file")


def read_rows(path: str | os.PathLike, required: tuple[str, ...] = ("id", "text")) -> pa.Table:
    """A Parquet or JSONL file of records made anywhere, for ``--input`` options."""
    path = Path(path)
    _check_input(path)
    table = pq.read_table(path) if path.suffix == ".parquet" else pa.Table.from_pylist([row for _, row in _jsonl(path)])
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(table.column_names)})")
    return table


def iter_rows(path: str | os.PathLike, columns: list[str], batch_size: int = 4096) -> Iterator[dict]:
    """The rows of a Parquet or JSONL file (only ``columns``), streamed a batch at a time."""
    path = Path(path)
    _check_input(path)
    if path.suffix == ".parquet":
        f = pq.ParquetFile(path)
        missing = [c for c in columns if c not in f.schema_arrow.names]
        if missing:
            raise ConfigError(f"{path}: no column {', '.join(missing)} (it has {', '.join(f.schema_arrow.names)})")
        for batch in f.iter_batches(batch_size=batch_size, columns=columns):
            yield from batch.to_pylist()
    else:
        for n, row in _jsonl(path):
            if any(c not in row for c in columns):
                raise ConfigError(f"{path}:{n}: expected an object with keys {', '.join(columns)}")
            yield row


def write_rows(table: pa.Table, path: str | os.PathLike) -> None:
    """Write records as Parquet or JSONL (by the file's ending), atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        write_parquet(table, path)
    elif path.suffix in (".jsonl", ".json"):
        write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in table.to_pylist()))
    else:
        raise ConfigError(f"{path}: expected a .parquet or .jsonl output file")
