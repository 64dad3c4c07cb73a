"""Text diversity of a set of documents: ``corpus diversity``, and the block every build writes.

The definitions, exactly, so numbers compare across tools and runs:

- **words**: the text NFKC-normalised and lower-cased; the words are every match of ``\\w+``
  (Python ``re``, Unicode).
- **distinct_1 … distinct_4**: distinct word n-grams / all word n-grams; n-grams do not cross
  documents. Distinct n-grams are counted as 64-bit hashes (xxh3 of each word, a polynomial over
  the window, splitmix64 on top): at 1e9 n-grams about 0.03 colliding pairs are expected, so
  the count is exact in practice. Up to ``DISTINCT_CAP`` distinct hashes per n are kept (8 bytes
  each); past that, only hashes whose low s bits are zero are kept and the count is scaled by
  2^s (adaptive sampling; relative standard error ~1/sqrt(DISTINCT_CAP) = 0.02%). That is what
  bounds memory on a million documents; ``distinct_estimated`` says whether it happened.
- **opener_top_share**: the share of documents whose first three words are the most common
  first-three-word sequence (a document with fewer words uses what it has);
  **openers_top10** / **openers_top20**: those sequences with their counts, most common first.
- **compression_ratio**: bytes of the texts joined with ``"\\n"`` (UTF-8) / bytes of
  ``gzip.compress(that, compresslevel=9)`` (computed by streaming the same deflate stream).
- **documents**: the count; **words**: all words.
- **near_duplicate_rate**: the share of documents the dedup stage marks as an exact or near
  duplicate of an earlier one (a run: its own verdicts over the gate-accepted texts; an input
  file: the recipe's dedup settings run over it). Null where it was not measured.
- **pairwise_jaccard**: the mean Jaccard similarity of the documents' word sets over every pair
  of a seeded reservoir sample of at most ``sample`` documents (Algorithm R with
  ``random.Random(seed)``, in input order); two empty sets count as identical.
- Code, from the Python snippets the gate's parser finds (``corpus.checks.parse``):
  **snippets**; **function_definitions** and **function_names_distinct** (``def NAME``);
  **identical_snippet_share**: the share of snippets equal to an earlier one once comments
  (``#`` to the end of the line) and all whitespace are removed; **imports_distinct** and
  **imports_top10**: top-level modules of ``import``/``from`` lines.

Everything streams: a document is read, counted and dropped; only the hash sets, the opener and
name counts and the sample stay in memory.
"""

from __future__ import annotations

import random
import re
import tempfile
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xxhash

from corpus.checks import ACCEPTED, parse
from corpus.config import ConfigError
from corpus.dedup import Deduplicator, window_hashes
from corpus.plan import mix64_array
from corpus.records import iter_rows
from corpus.settings import DedupConfig

NGRAMS = (1, 2, 3, 4)
DISTINCT_CAP = 1 << 24  # distinct hashes kept per n before sampling starts (128 MB each)
SAMPLE = 1000  # documents in the pairwise sample
BATCH = 4096  # documents signed at a time for the near-duplicate rate of an input file

# The metrics a table shows, in order, each with how it prints (--json and stats.json have every key).
TABLE = [
    ("documents", "count"), ("words", "count"),
    ("distinct_1", "ratio"), ("distinct_2", "ratio"), ("distinct_3", "ratio"), ("distinct_4", "ratio"),
    ("opener_top_share", "share"), ("compression_ratio", "ratio"), ("near_duplicate_rate", "share"),
    ("pairwise_jaccard", "ratio"), ("snippets", "count"), ("function_definitions", "count"),
    ("function_names_distinct", "count"), ("identical_snippet_share", "share"), ("imports_distinct", "count"),
]


def format_metric(key: str, value, digits: int = 3) -> str:
    """A metric as a table prints it: counts with separators, shares in %, ratios to ``digits`` places."""
    if value is None:
        return "–"
    kind = dict(TABLE).get(key, "ratio")
    return f"{value:,}" if kind == "count" else f"{value:.{max(1, digits - 2)}%}" if kind == "share" else f"{value:.{digits}f}"


_WORD = re.compile(r"\w+")
_COMMENT = re.compile(r"#[^\n]*")
_SPACE = re.compile(r"\s+")
_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.M)
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*\w*)|import[ \t]+([\w., \t]+))", re.M)


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


class DistinctCounter:
    """Counts distinct 64-bit hashes: exact up to ``cap`` kept, adaptive sampling past it."""

    def __init__(self, cap: int = DISTINCT_CAP):
        self.cap = cap
        self.level = 0  # keep hashes whose low ``level`` bits are zero
        self.kept = np.empty(0, dtype=np.uint64)
        self.pending: list[np.ndarray] = []
        self.pending_n = 0

    def add(self, hashes: np.ndarray) -> None:
        if self.level:
            hashes = hashes[(hashes & np.uint64((1 << self.level) - 1)) == 0]
        self.pending.append(hashes)
        self.pending_n += len(hashes)
        if self.pending_n > max(1 << 20, len(self.kept)):
            self._merge()

    def _merge(self) -> None:
        if self.pending:
            self.kept = np.unique(np.concatenate([self.kept, *self.pending]))
            self.pending, self.pending_n = [], 0
        while len(self.kept) > self.cap:
            self.level += 1
            self.kept = self.kept[(self.kept & np.uint64((1 << self.level) - 1)) == 0]

    def count(self) -> int:
        self._merge()
        return len(self.kept) << self.level

    @property
    def estimated(self) -> bool:
        return self.level > 0


def _hash_words(ws: list[str]) -> np.ndarray:
    return np.fromiter(map(xxhash.xxh3_64_intdigest, map(str.encode, ws)), dtype=np.uint64, count=len(ws))


def _snippet_key(code: str) -> int:
    return xxhash.xxh3_64_intdigest(_SPACE.sub("", _COMMENT.sub("", code)).encode())


class Diversity:
    """Accumulates the metrics over documents given one at a time (``add``); ``result()``."""

    def __init__(self, seed: int = 0, sample: int = SAMPLE, cap: int = DISTINCT_CAP):
        self.documents = 0
        self.ngrams = Counter()
        self.distinct = {n: DistinctCounter(cap) for n in NGRAMS}
        self.openers = Counter()
        self.raw_bytes = 0
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing, as gzip.compress
        self.compressed_bytes = 0
        self.rng = random.Random(seed)
        self.sample_size = sample
        self.sample: list[np.ndarray] = []  # word-hash sets of the reservoir
        self.snippets = 0
        self.definitions = 0
        self.names: set[str] = set()
        self.snippet_keys = DistinctCounter(cap)
        self.imports = Counter()

    def add(self, text: str) -> None:
        ws = words(text)
        values = _hash_words(ws)
        for n in NGRAMS:
            if len(values) >= n:
                self.ngrams[n] += len(values) - n + 1
                self.distinct[n].add(mix64_array(window_hashes(values, n)))
        self.openers[" ".join(ws[:3])] += 1
        data = text.encode()
        if self.documents:
            data = b"\n" + data
        self.raw_bytes += len(data)
        self.compressed_bytes += len(self._deflate.compress(data))
        self._reservoir(values)
        self.documents += 1
        snippets = parse(text).snippets
        self.snippets += len(snippets)
        if snippets:
            self.snippet_keys.add(np.array([_snippet_key(s) for s in snippets], dtype=np.uint64))
        for code in snippets:
            names = _DEF.findall(code)
            self.definitions += len(names)
            self.names.update(names)
            for frm, imp in _IMPORT.findall(code):
                mods = [frm] if frm else [m.strip().split()[0] for m in imp.split(",") if m.strip()]
                self.imports.update(list(dict.fromkeys(m if m.startswith(".") else m.split(".")[0] for m in mods)))

    def _reservoir(self, values: np.ndarray) -> None:
        if len(self.sample) < self.sample_size:
            self.sample.append(np.unique(values))
        else:
            j = self.rng.randrange(self.documents + 1)
            if j < self.sample_size:
                self.sample[j] = np.unique(values)

    def pairwise_jaccard(self) -> float | None:
        k = len(self.sample)
        if k < 2:
            return None
        from scipy.sparse import csr_matrix

        sizes = np.array([len(s) for s in self.sample], dtype=np.float64)
        _, cols = np.unique(np.concatenate(self.sample), return_inverse=True)
        rows = np.repeat(np.arange(k), sizes.astype(np.int64))
        x = csr_matrix((np.ones(len(cols), dtype=np.float64), (rows, cols)), shape=(k, int(cols.max(initial=0)) + 1))
        inter = (x @ x.T).toarray()
        union = sizes[:, None] + sizes[None, :] - inter
        sim = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
        iu = np.triu_indices(k, 1)
        return float(sim[iu].mean())

    def result(self, near_duplicate_rate: float | None = None) -> dict:
        compressed = self.compressed_bytes + len(self._deflate.copy().flush())
        top = self.openers.most_common(20)
        snippets_distinct = self.snippet_keys.count()
        return {
            "documents": self.documents,
            "words": self.ngrams[1],
            **{f"distinct_{n}": self.distinct[n].count() / self.ngrams[n] if self.ngrams[n] else None for n in NGRAMS},
            "distinct_estimated": any(d.estimated for d in self.distinct.values()),
            "opener_top_share": top[0][1] / self.documents if top else None,
            "openers_top10": [[o, c] for o, c in top[:10]],
            "openers_top20": [[o, c] for o, c in top],
            "compression_ratio": self.raw_bytes / compressed if self.raw_bytes else None,
            "near_duplicate_rate": near_duplicate_rate,
            "pairwise_jaccard": self.pairwise_jaccard(),
            "pairwise_sample": len(self.sample),
            "snippets": self.snippets,
            "function_definitions": self.definitions,
            "function_names_distinct": len(self.names),
            "identical_snippet_share": (self.snippets - snippets_distinct) / self.snippets if self.snippets else None,
            "imports_distinct": len(self.imports),
            "imports_top10": [[m, c] for m, c in self.imports.most_common(10)],
        }


def measure(texts: Iterable[str], *, seed: int = 0, sample: int = SAMPLE, near_duplicate_rate: float | None = None) -> dict:
    """The metrics of ``texts`` (see the module docstring)."""
    d = Diversity(seed, sample)
    for t in texts:
        d.add(t)
    return d.result(near_duplicate_rate)


# -- sources ----------------------------------------------------------------------------------
def branch(topic: str | None) -> str | None:
    """The top branch of a topic path ("Branch > Sub > Leaf")."""
    return topic.split(" > ")[0] if topic else topic


def _value(row: dict, by: str):
    return branch(row.get("topic")) if by == "branch" else row.get(by)


class Grouped:
    """One ``Diversity`` for all documents and, with ``by``, one per value of that column."""

    def __init__(self, by: str | None, seed: int, sample: int):
        self.by, self.seed, self.sample = by, seed, sample
        self.all = Diversity(seed, sample)
        self.groups: dict[str, Diversity] = {}

    def add(self, row: dict) -> None:
        self.all.add(row["text"])
        if self.by:
            v = str(_value(row, self.by))
            if v not in self.groups:
                self.groups[v] = Diversity(self.seed, self.sample)
            self.groups[v].add(row["text"])

    def result(self, near_duplicate_rate: float | None = None) -> dict:
        out = self.all.result(near_duplicate_rate)
        if self.by:
            out["by"] = {"axis": self.by, "values": {v: g.result() for v, g in sorted(self.groups.items())}}
        return out


def _columns(by: str | None) -> list[str]:
    return ["text"] + ([] if not by else ["topic"] if by == "branch" else [by])


def measure_input(path: str | Path, dedup: DedupConfig, *, by: str | None = None, seed: int = 0, sample: int = SAMPLE) -> dict:
    """The metrics of a Parquet/JSONL file's ``text`` column; the near-duplicate rate with ``dedup``."""
    g = Grouped(by, seed, sample)
    dups = 0
    with tempfile.TemporaryDirectory(prefix="diversity-dedup-") as state:
        dd = Deduplicator(state, dedup, workers=1)
        texts: list[str] = []

        def flush() -> int:
            ids = [str(g.all.documents - len(texts) + i) for i in range(len(texts))]
            found = sum(r is not None for dec in dd.add(dd.next, ids, texts) for r in dec.reason)
            texts.clear()
            return found

        for row in iter_rows(path, _columns(by)):
            if row["text"] is None:
                continue
            g.add(row)
            texts.append(row["text"])
            if len(texts) == BATCH:
                dups += flush()
        if texts:
            dups += flush()
        dd.close()
    n = g.all.documents
    return g.result(dups / n if n else None)


def measure_run(run, *, by: str | None = None, seed: int = 0, sample: int = SAMPLE) -> dict:
    """A run's corpus (top level) and, under ``rejected``, the texts its gate rejected."""
    parts = sorted((run.path / "corpus").glob("part-*.parquet"))
    chunks = run.chunks()
    if not parts and not chunks:
        raise ConfigError(f"{run.path}: no corpus/part-*.parquet and no generated chunks")
    kept = Grouped(by, seed, sample)
    for p in parts:
        for row in iter_rows(p, _columns(by)):
            kept.add(row)
    rejected = Grouped(by, seed, sample)
    accepted = dups = 0
    for c in sorted(chunks):
        cols = ["gate", "dup_of", *_columns(by)]
        for row in iter_rows(chunks[c], cols):
            if row["gate"] == ACCEPTED:
                accepted += 1
                dups += row["dup_of"] is not None
            elif row["text"] is not None and row["gate"] is not None:
                rejected.add(row)
    out = kept.result(dups / accepted if accepted else None)
    out["rejected"] = rejected.result()
    return out
