"""Exact and near-duplicate removal: normalised-text hashes, then MinHash LSH.

Decision rule (the same whatever the split): documents are taken in index order (chunk
order, then row order); a document is dropped when its normalised text equals that of an
earlier *kept* document (``exact``), or when it shares an LSH band with an earlier kept
document and the Jaccard similarity of their shingle sets reaches ``threshold`` (``near``).
``dup_of`` names the earliest such kept document. Because a decision only looks at earlier
kept documents, chunk k can be decided only once chunks 0..k-1 are: chunks that arrive
early are signed (and their signatures saved) but parked until the gap before them fills.

Signatures are datasketch ``MinHash`` signatures (scheme ``affine32``, the permutations of
``MinHash(num_perm, seed, scheme="affine32")``, regenerated here as datasketch does) of a set
of 32-bit shingle hashes; ``datasketch_signature`` computes the same thing through datasketch
itself and the tests check the two agree bit for bit. Keeping that compatibility costs
nothing: the affine permutations are one multiply-add-min per (shingle, permutation), which
the fused kernel vectorises over the permutations (~9 us/doc), and the time goes to tokenising.

Everything per document is compiled (numba, ``corpus.dedup_kernels``; ``numba`` caches the
machine code, the first run on a machine compiles for ~7 s, a process then loads it in
~0.3-0.5 s, which ``corpus dedup`` does at start-up): one pass over a chunk's UTF-8 bytes
normalises (ASCII texts in the kernel, the others' NFKC and lower case in Python), hashes
words (FNV-1a-64 + fmix64: xxh3 per word through Python cost 0.1 ms/doc, twice all the rest),
windows them into shingles, radix-sorts and deduplicates them, and applies all permutations;
the in-chunk decisions (the loop of the rule above) and the Jaccard verification of candidates
are compiled too. On ~6,900 real extracts (bench/dedup.py (e)) ``corpus dedup --input``
runs 4.3x rensa 0.5.0's RMinHash + RMinHashLSH end to end on one core (Parquet; 2.8x on JSONL,
where reading and writing JSON takes most of both), with exact verification instead of an
estimate. The word hash is new in state version 2, so a state directory from before is
refused (``config.json``) rather than mixed.

The LSH index is not datasketch's ``MinHashLSH`` (6.3 KB per document at 20 bands here, so
19 GB for 3M documents: bench/dedup.py) but sorted numpy runs of (64-bit band key, uint32 document
number), merged like a binary counter: 12 bytes per band per kept document. Candidates'
shingle sets are read back from the per-chunk files (``shingles-XXXXXX.npy``) when needed,
so neither they nor the signatures live in memory (with ``ephemeral`` state, for ``--input``,
the latest decided chunk's stay in memory and nothing is fsynced).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import resource
import time
import unicodedata
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from corpus import dedup_kernels as K
from corpus.config import ConfigError
from corpus.io import save_npy, write_parquet, write_text
from corpus.settings import DedupConfig
from corpus.stage import Stage, live_rows, set_column

# -- signatures ------------------------------------------------------------------------
# Words are what remains between whitespace once ASCII punctuation (and common typographic
# marks) become spaces: letters, digits and "_" runs, like regex \w+.
_PUNCT_CHARS = "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb"
_PUNCT = str.maketrans({c: " " for c in _PUNCT_CHARS})
_SEP = np.array([chr(c) == " " or chr(c) in _PUNCT_CHARS for c in range(256)], dtype=bool)  # bytes (ASCII only)
_SPACE = np.array([c < 128 and chr(c).isspace() for c in range(256)], dtype=bool)  # str.split()'s ASCII whitespace
_LOWSP = np.where(_SPACE, 32, np.arange(256) + 32 * ((np.arange(256) >= 65) & (np.arange(256) <= 90))).astype(np.uint8)
_SPECIAL = np.isin(np.arange(256), [0xC2, 0xE1, 0xE2])  # lead bytes of U+0085, U+1680, U+2028/9
_M64 = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial shingle hash
_EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's value for "no element seen"
# Saved state (signatures, shingle sets) made with other shingle hashes must not be mixed in.
_STATE_VERSION = 2  # 2: words hashed by FNV-1a-64 + fmix64 in numba (1: xxh3_64 per word)


def normalise(text: str) -> str:
    """NFKC, lower case, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def window_hashes(values: np.ndarray, k: int) -> np.ndarray:
    """Hash each window of k consecutive uint64 values: sum v[i+j] * M^(k-1-j) mod 2^64."""
    h = values[: len(values) - k + 1].copy()
    with np.errstate(over="ignore"):
        for j in range(1, k):
            h *= _M64
            h += values[j : len(values) - k + 1 + j]
    return h


def _utf8(texts) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(arrow array, UTF-8 bytes, int64 offsets) of a list of str or an arrow string array."""
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if not isinstance(arr, pa.Array):
        arr = pa.array(texts, pa.large_string())
    if pa.types.is_string(arr.type):
        width = np.int32
    elif pa.types.is_large_string(arr.type):
        width = np.int64
    else:
        raise TypeError(f"dedup: expected strings, got {arr.type}")
    _, off_buf, data_buf = arr.buffers()
    offs = np.frombuffer(off_buf, dtype=width)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    if len(offs) == 0:
        offs = np.zeros(1, np.int64)
    return arr, data, offs


def normalised(texts) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of ``normalise`` of every text, concatenated, and their offsets, made
    by a compiled kernel (K.collapse). NFKC leaves ASCII as it is, so only the non-ASCII
    texts go through Python (NFKC and lower case); whitespace is collapsed by the kernel
    for all (tests: the same bytes as ``normalise``)."""
    arr, data, offs = _utf8(texts)
    is_ascii = K.ascii_flags(data, data[: len(data) // 8 * 8].view(np.uint64), offs)
    other = np.flatnonzero(~is_ascii)
    if len(other):
        py = texts if isinstance(texts, list) else None
        parts = [unicodedata.normalize("NFKC", py[i] if py is not None else arr[i].as_py()).lower().encode()
                 for i in other.tolist()]
        pre = np.frombuffer(b"".join(parts), dtype=np.uint8)
        pre_offs = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    else:
        pre, pre_offs = np.empty(0, np.uint8), np.zeros(1, np.int64)
    return K.collapse(data, offs, is_ascii, pre, pre_offs, _LOWSP, _SPECIAL)


def _exact(norm: np.ndarray, offs: np.ndarray) -> np.ndarray:
    # 64-bit xxh3 of each normalised text, read from the bytes (3M documents: collision odds ~2e-7).
    mv, o = memoryview(norm), offs.tolist()
    h = xxhash.xxh3_64_intdigest
    return np.array([h(mv[o[i] : o[i + 1]]) for i in range(len(o) - 1)], dtype=np.uint64)


def exact_of(texts) -> np.ndarray:
    """The exact-duplicate hashes of the texts (of their normalised forms)."""
    return _exact(*normalised(texts))


def shingle_hashes(text: str, cfg: DedupConfig) -> np.ndarray:
    """The document's shingles as 32-bit hashes (the set MinHash summarises; may repeat).
    A text shorter than one shingle is one shingle."""
    norm = np.frombuffer(normalise(text).encode(), dtype=np.uint8)
    return K.shingles_of(norm, 0, len(norm), cfg.shingle == "words", cfg.shingle_size, _SEP)


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own permutation parameters (a, b) for these settings, generated as
    datasketch 2.0.0's ``MinHash._init_permutations`` does (affine32; importing datasketch
    takes 0.4 s, so it is imported only by the reference path ``datasketch_signature``)."""
    if scheme != "affine32":
        raise ConfigError(f"dedup: scheme {scheme!r} is not supported (affine32 only)")
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@dataclass
class Sketch:
    """What the dedup stage keeps of a batch of documents."""

    sig: np.ndarray  # uint32 [n, num_perm]: datasketch MinHash signatures
    exact: np.ndarray  # uint64 [n]: hash of the normalised text
    shingles: np.ndarray  # uint32: each document's sorted distinct shingle hashes, concatenated
    offsets: np.ndarray  # int64 [n + 1]: document i's shingles are shingles[offsets[i]:offsets[i+1]]

    def shingle_set(self, i: int) -> np.ndarray:
        return self.shingles[self.offsets[i] : self.offsets[i + 1]]


def signatures(texts, cfg: DedupConfig) -> Sketch:
    """MinHash signatures, exact hashes and shingle sets of ``texts`` (a list of str or an
    arrow string array), by one compiled pass over the chunk's normalised bytes: per
    document, its words are hashed, windowed into shingles, radix-sorted and deduplicated,
    and all ``num_perm`` permutations are applied to each distinct shingle in one fused loop.
    A document without shingles gets the empty signature (all 2^32-1), as in datasketch."""
    a, b = permutations(cfg.num_perm, cfg.seed, cfg.scheme)
    norm, offs = normalised(texts)
    sig, shingles, offsets = K.sketch(norm, offs, cfg.shingle == "words", cfg.shingle_size, a, b, _SEP)
    return Sketch(sig, _exact(norm, offs), shingles, offsets)


def load_kernels(cfg: DedupConfig | None = None) -> float:
    """Load (or, the first time on a machine, compile) the compiled kernels by running each on
    a tiny input; returns the seconds it took. Numba's first call in a process costs ~0.25 s
    even from its cache: ``corpus dedup`` pays it at start-up, with the imports."""
    t0 = time.perf_counter()
    cfg = cfg or DedupConfig()
    sk = signatures(["load the kernels", "load the kernels \u00e9"], cfg)
    one = np.zeros(2, np.int64)
    K.jaccard_pairs(sk.shingles, sk.offsets, one, sk.shingles, sk.offsets, one, cfg.threshold)
    K.decide_in_chunk(sk.exact, band_keys(sk.sig, cfg), np.zeros(2, bool), -1 - one, -1 - one, sk.shingles, sk.offsets,
                      cfg.threshold)
    return time.perf_counter() - t0


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted arrays of distinct shingle hashes."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / max(1, len(a) + len(b) - inter)


def datasketch_signature(text: str, cfg: DedupConfig) -> np.ndarray:
    """The same signature computed by datasketch's ``MinHash.update_batch`` (reference path)."""
    from datasketch import MinHash

    m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme=cfg.scheme, hashfunc=int)
    m.update_batch(shingle_hashes(text, cfg).tolist())
    return m.hashvalues


def band_keys(sig: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """One 64-bit key per (document, band); the band number is mixed in, so all bands share one index."""
    n = len(sig)
    keys = np.empty((n, cfg.bands), dtype=np.uint64)
    s = sig.astype(np.uint64)
    with np.errstate(over="ignore"):
        for band in range(cfg.bands):
            h = np.full(n, np.uint64(band + 1) * _M64, dtype=np.uint64)
            for j in range(band * cfg.rows, (band + 1) * cfg.rows):
                h = (h ^ s[:, j]) * _M64
            keys[:, band] = h ^ (h >> np.uint64(29))
    return keys


# -- the index of kept documents ----------------------------------------------------------
class _Runs:
    """A multimap uint64 key -> uint32 document number, as sorted numpy runs.

    Runs are merged while the newer is at least half the older (a binary counter), so
    there are O(log n) runs and each entry is re-sorted O(log n) times. 12 bytes/entry."""

    def __init__(self):
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: np.ndarray, docs: np.ndarray) -> None:
        if len(keys) == 0:
            return
        order = np.argsort(keys, kind="stable")
        self.runs.append((keys[order], docs[order].astype(np.uint32)))
        while len(self.runs) > 1 and len(self.runs[-1][0]) * 2 >= len(self.runs[-2][0]):
            (k1, d1), (k2, d2) = self.runs.pop(-2), self.runs.pop()
            k, d = np.concatenate([k1, k2]), np.concatenate([d1, d2])
            order = np.argsort(k, kind="stable")
            self.runs.append((k[order], d[order]))

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (query position, document) pairs whose keys are equal."""
        qs, ds = [], []
        for k, d in self.runs:
            lo = np.searchsorted(k, keys, "left")
            hi = np.searchsorted(k, keys, "right")
            count = hi - lo
            hit = np.nonzero(count)[0]
            if len(hit) == 0:
                continue
            q = np.repeat(hit, count[hit])
            first = np.repeat(lo[hit] - np.cumsum(count[hit]) + count[hit], count[hit])
            qs.append(q)
            ds.append(d[first + np.arange(len(q))])
        if not qs:
            return np.empty(0, np.int64), np.empty(0, np.uint32)
        return np.concatenate(qs), np.concatenate(ds)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + d.nbytes for k, d in self.runs)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Decisions:
    """The verdicts for one chunk, aligned with the ids it was given."""

    chunk: int
    ids: list[str]
    dup_of: list[str | None]
    reason: list[str | None]  # None (kept), "exact" or "near"


class Deduplicator:
    """Stateful deduplication of a run's chunks, persisted under ``state_dir``.

    ``add(chunk, ids, texts)`` signs the chunk (saving ``sig-XXXXXX.npy``) and decides every
    chunk that has become decidable (all earlier chunk numbers decided), returning their
    ``Decisions``. Decisions are saved as ``dec-XXXXXX.parquet``; a new Deduplicator on the
    same directory reloads them, so rerunning is the recovery procedure (``from_chunk``: first
    delete the saved state of chunks from this one on). Chunk numbers start at 0 and have no gaps.

    ``ephemeral``: ``state_dir`` is thrown away after this run (``corpus dedup --input``), so
    nothing is written atomically or fsynced, and a chunk's sketch is written only once a
    later chunk is decided (the last chunk's never: a one-chunk file writes none)."""

    def __init__(self, state_dir: str | os.PathLike, cfg: DedupConfig, workers: int | None = None, *, from_chunk: int | None = None,
                 ephemeral: bool = False):
        self.dir = Path(state_dir)
        self.cfg = cfg
        self.ephemeral = ephemeral
        self._mem: dict[int, Sketch] = {}  # ephemeral: decided chunks' sketches not written yet
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "config.json"
        want = json.dumps({**asdict(cfg), "state_version": _STATE_VERSION}, sort_keys=True)
        if conf.exists() and conf.read_text() != want:
            raise ConfigError(
                f"{self.dir}: saved with different dedup settings ({conf.read_text()}); "
                f"delete {self.dir} to recompute with the new ones"
            )
        (conf.write_text if ephemeral else lambda t: write_text(conf, t))(want)
        self.bands = _Runs()
        self.exact = _Runs()
        self.offsets = [0]  # document numbers of chunk c: offsets[c] .. offsets[c+1]-1
        self.ids: list[pa.Array] = []
        self.parked: dict[int, tuple[list[str], Sketch]] = {}  # signed, waiting for earlier chunks
        self.stats = {"docs_in": 0, "exact_dups": 0, "near_dups": 0, "kept": 0, "signed": 0,
                      "signatures_loaded": 0, "seconds": 0.0, "sign_seconds": 0.0}
        if from_chunk is not None:  # their chunk files are about to be made again: their state is stale
            for p in self.dir.iterdir():
                m = re.fullmatch(rf"(?:dec|{'|'.join(_FILES)})-(\d+)\.(?:parquet|npy)", p.name)
                if m and int(m.group(1)) >= from_chunk:
                    p.unlink()
        while (self.dir / f"dec-{self.next:06d}.parquet").exists():
            self._reload(self.next)

    @property
    def next(self) -> int:
        """The next chunk number to decide."""
        return len(self.offsets) - 1

    def _path(self, kind: str, chunk: int) -> Path:
        return self.dir / f"{kind}-{chunk:06d}.{'parquet' if kind == 'dec' else 'npy'}"

    def _reload(self, chunk: int) -> None:
        dec = pq.read_table(self._path("dec", chunk))
        sig = np.load(self._path("sig", chunk))
        exact = np.load(self._path("exact", chunk))
        kept = np.asarray(dec.column("reason").is_null())
        self._index(dec.column("id").combine_chunks(), sig, exact, kept)
        self.stats["docs_in"] += len(dec)
        self.stats["kept"] += int(kept.sum())
        reasons = dec.column("reason").to_pylist()
        self.stats["exact_dups"] += reasons.count("exact")
        self.stats["near_dups"] += reasons.count("near")

    def _index(self, ids, sig, exact, kept) -> None:
        base = self.offsets[-1]
        docs = base + np.nonzero(kept)[0]
        self.exact.add(exact[kept], docs)
        nonempty = sig[kept].min(axis=1) != _EMPTY
        self.bands.add(band_keys(sig[kept][nonempty], self.cfg).ravel(), np.repeat(docs[nonempty], self.cfg.bands))
        self.offsets.append(base + len(sig))
        self.ids.append(ids)

    def _load_sketch(self, chunk: int, mmap: bool = False) -> Sketch | None:
        if chunk in self._mem:
            return self._mem[chunk]
        paths = [self._path(k, chunk) for k in _FILES]
        if not all(p.exists() for p in paths):
            return None
        return Sketch(*(np.load(p, mmap_mode="r" if mmap else None) for p in paths))

    def _sign(self, chunk: int, texts: list[str]) -> Sketch:
        sk = self._load_sketch(chunk)
        # Saved signatures are reused when they are of the same texts (same normalised hashes).
        if sk is not None and np.array_equal(sk.exact, exact_of(texts)):
            self.stats["signatures_loaded"] += len(texts)
            return sk
        t0 = time.perf_counter()
        if self.workers == 1 or len(texts) < 64:
            sk = signatures(texts, self.cfg)
        else:
            if self._pool is None:
                # spawn: safe in a process that already runs threads (the build loop).
                self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
            step = -(-len(texts) // self.workers)
            parts = list(self._pool.map(signatures, [texts[i : i + step] for i in range(0, len(texts), step)],
                                        [self.cfg] * self.workers))
            sk = Sketch(np.concatenate([p.sig for p in parts]), np.concatenate([p.exact for p in parts]),
                        np.concatenate([p.shingles for p in parts]),
                        np.concatenate([[0]] + [p.offsets[1:] + sum(len(q.shingles) for q in parts[:i])
                                                for i, p in enumerate(parts)]))
        self.stats["sign_seconds"] += time.perf_counter() - t0
        self.stats["signed"] += len(texts)
        if not self.ephemeral:
            for kind in reversed(_FILES):  # the signature last: it marks the chunk as signed
                save_npy(self._path(kind, chunk), getattr(sk, kind))
        return sk

    def _keep(self, chunk: int, sk: Sketch) -> None:
        """Ephemeral state: keep the just decided chunk's sketch in memory, and write those
        of the earlier ones (plain writes: the directory is temporary)."""
        for c in [c for c in self._mem if c < chunk]:
            old = self._mem.pop(c)
            for kind in _FILES:
                np.save(self._path(kind, c), getattr(old, kind))
        self._mem[chunk] = sk

    def add(self, chunk: int, ids: list[str], texts: list[str]) -> list[Decisions]:
        """Sign chunk ``chunk`` and decide every chunk that is now decidable (in order)."""
        t0 = time.perf_counter()
        if chunk < self.next:
            dec = pq.read_table(self._path("dec", chunk))
            if dec.column("id").to_pylist() != list(ids):
                raise ConfigError(
                    f"chunk {chunk} was deduplicated with different documents (see {self._path('dec', chunk)}); "
                    f"delete {self.dir} to redo the run's deduplication"
                )
            return [self._load_decisions(chunk)]
        self.parked[chunk] = (list(ids), self._sign(chunk, texts))
        out = []
        while self.next in self.parked:
            out.append(self._decide(self.next, *self.parked.pop(self.next)))
        self.stats["seconds"] += time.perf_counter() - t0
        return out

    def _load_decisions(self, chunk: int) -> Decisions:
        d = pq.read_table(self._path("dec", chunk)).to_pydict()
        return Decisions(chunk, d["id"], d["dup_of"], d["reason"])

    def _id(self, doc: int) -> str:
        c = int(np.searchsorted(self.offsets, doc, "right")) - 1
        return self.ids[c][doc - self.offsets[c]].as_py()

    def _verify_prior(self, sk: Sketch, q: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Exact Jaccard >= threshold for pairs (this chunk's q, earlier document d), reading
        the earlier shingle sets from their chunk's files (memory-mapped)."""
        ok = np.zeros(len(q), dtype=bool)
        chunks = np.searchsorted(self.offsets, d, "right") - 1
        for c in np.unique(chunks).tolist():
            old = self._load_sketch(c, mmap=True)
            k = np.nonzero(chunks == c)[0]
            ok[k] = K.jaccard_pairs(sk.shingles, sk.offsets, q[k].astype(np.int64), np.asarray(old.shingles),
                                    np.asarray(old.offsets), d[k].astype(np.int64) - self.offsets[c], self.cfg.threshold)
        return ok

    def _decide(self, chunk: int, ids: list[str], sk: Sketch) -> Decisions:
        cfg, n = self.cfg, len(ids)
        sig, exact = sk.sig, sk.exact
        empty = np.diff(sk.offsets) == 0
        keys = band_keys(sig, cfg)
        # Earlier chunks: the kept document with the same exact hash (at most one), else the
        # smallest kept document with a band in common and an exact Jaccard >= threshold.
        prior_exact = np.full(n, -1, dtype=np.int64)
        prior_near = np.full(n, -1, dtype=np.int64)
        q, d = self.exact.lookup(exact)
        prior_exact[q] = d
        q, d = self.bands.lookup(keys.ravel())
        q = q // cfg.bands
        keep = (prior_exact[q] < 0) & ~empty[q]
        if keep.any():
            pairs = np.unique(np.stack([q[keep], d[keep].astype(np.int64)], 1), axis=0)
            q, d = pairs[:, 0], pairs[:, 1]
            same = self._verify_prior(sk, q, d)
            for qi, di in zip(q[same].tolist(), d[same].tolist()):
                if prior_near[qi] < 0 or di < prior_near[qi]:
                    prior_near[qi] = di
        # Then in order within the chunk (exact before near, earlier before later), so the
        # verdicts are those of one pass over everything (a compiled loop: K.decide_in_chunk).
        kept, code, dup = K.decide_in_chunk(exact, keys, empty, prior_exact, prior_near, sk.shingles, sk.offsets, cfg.threshold)
        dup_of: list[str | None] = [None] * n
        reason: list[str | None] = [None] * n
        for i in np.nonzero(code)[0].tolist():
            prior = prior_exact[i] if code[i] == 1 else prior_near[i]
            reason[i] = "exact" if code[i] == 1 else "near"
            dup_of[i] = self._id(int(prior)) if prior >= 0 else ids[int(dup[i])]
        dec = pa.table({"id": pa.array(ids, pa.string()), "dup_of": pa.array(dup_of, pa.string()),
                        "reason": pa.array(reason, pa.string())})
        if self.ephemeral:
            pq.write_table(dec, self._path("dec", chunk))
            self._keep(chunk, sk)
        else:
            write_parquet(dec, self._path("dec", chunk))
        self._index(pa.array(ids, pa.string()), sig, exact, kept)
        self.stats["docs_in"] += n
        self.stats["kept"] += int(kept.sum())
        self.stats["exact_dups"] += reason.count("exact")
        self.stats["near_dups"] += reason.count("near")
        return Decisions(chunk, list(ids), dup_of, reason)

    @property
    def index_bytes(self) -> int:
        """Bytes held in memory by the index (band and exact runs, offsets and ids)."""
        return self.bands.nbytes + self.exact.nbytes + sum(a.nbytes for a in self.ids) + 8 * len(self.offsets)

    def report(self) -> dict:
        return {**self.stats, "parked_chunks": sorted(self.parked), "index_bytes": self.index_bytes,
                "peak_rss_mb": round(peak_rss_mb(), 1), "config": asdict(self.cfg)}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


# Per-chunk files of a sketch (file kind -> Sketch field).
_FILES = ("sig", "exact", "shingles", "offsets")  # = the Sketch fields, in order


class Dedup(Stage):
    """The dedup stage: fills ``dup_of`` (the kept document's id; null when kept) for the live rows
    (text present, gate accepted or not run). Batch k of the calls is chunk k of the run: batches
    must come in order (the runner's chunk loop); the state in ``state_dir`` makes every batch's
    verdicts final, so a resumed run re-reads them instead of recomputing. ``from_chunk``: as in
    ``Deduplicator`` (the chunk files from there on are about to be made again)."""

    name = "dedup"

    def __init__(self, cfg: DedupConfig, state_dir: str | os.PathLike, *, workers: int | None = None, from_chunk: int | None = None,
                 ephemeral: bool = False):
        super().__init__()
        self.dd = Deduplicator(state_dir, cfg, workers, from_chunk=from_chunk, ephemeral=ephemeral)
        self.batch = 0

    def __call__(self, table: pa.Table) -> pa.Table:
        t0, fresh = time.perf_counter(), self.batch >= self.dd.next
        rows = np.nonzero(live_rows(table))[0]
        ids = table.column("id").to_pylist()
        texts = table.column("text").combine_chunks()
        texts = texts if len(rows) == len(texts) else texts.take(pa.array(rows))
        decided = {d.chunk: d for d in self.dd.add(self.batch, [ids[i] for i in rows], texts)}
        if self.batch not in decided:
            raise RuntimeError(f"dedup: batch {self.batch} cannot be decided before batch {self.dd.next}")
        dec = decided[self.batch]
        self.batch += 1
        col: list[str | None] = [None] * table.num_rows
        for i, d in zip(rows, dec.dup_of):
            col[i] = d
        dropped = Counter(r for r in dec.reason if r)
        self.stats.add(len(rows) - sum(dropped.values()), dropped, time.perf_counter() - t0 if fresh else 0.0)
        return set_column(table, "dup_of", pa.array(col, pa.string()))

    def report(self) -> dict:
        return self.dd.report()

    def close(self) -> None:
        self.dd.close()
