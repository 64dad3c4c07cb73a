"""Dedup: datasketch-identical signatures, decisions at known Jaccard values, split invariance,
resumption, and the CLI on a run directory and on plain files."""

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.cli import main
from corpus.config import ConfigError
from corpus.dedup import (
    Dedup,
    DedupConfig,
    Deduplicator,
    datasketch_signature,
    signatures,
)
from corpus.io import write_parquet as write_parquet_atomic
from corpus.recipe import load_recipe
from corpus.records import record_schema

CFG = DedupConfig()


def words(rng, n):
    return [f"w{rng.randrange(10**9)}" for _ in range(n)]


def shingle_set(text, k=5):
    w = text.split()
    return {" ".join(w[i : i + k]) for i in range(len(w) - k + 1)}


def jaccard(a, b):
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb)


def edited(rng, base, n_edits):
    """Replace n_edits words at positions >= 5 apart: each changes exactly 5 shingles."""
    w = list(base)
    for p in rng.sample(range(0, len(w) // 6), n_edits):
        w[6 * p + 3] = f"e{rng.randrange(10**9)}"
    return " ".join(w)


def test_signatures_equal_datasketch_update_batch():
    rng = random.Random(0)
    texts = ["The Quick brown fox, jumps over the lazy dog. " * 3, "def f(x):\n    return x + 1\n", "", "one two",
             " ".join(words(rng, 300))]
    for cfg in (CFG, DedupConfig(shingle="chars", shingle_size=7)):
        sig = signatures(texts, cfg).sig
        for t, s in zip(texts, sig):
            assert np.array_equal(s, datasketch_signature(t, cfg))
    assert (sig[2] == 0xFFFFFFFF).all() and not (sig[3] == 0xFFFFFFFF).all()


@pytest.mark.parametrize("n_edits, dropped", [(4, True), (11, True), (17, False), (30, False), (51, False)])
def test_near_duplicates_at_known_jaccard(tmp_path, n_edits, dropped):
    rng = random.Random(n_edits)
    base = words(rng, 600)
    a, b = " ".join(base), edited(rng, base, n_edits)
    j = jaccard(a, b)  # 596 shingles, 5 per edit: J 0.93, 0.83 (above 0.8), 0.75 (just below), 0.60, 0.40
    est = np.mean(signatures([a], CFG).sig == signatures([b], CFG).sig)
    assert abs(est - j) < 0.1
    with Dedup(CFG, tmp_path) as stage:
        t = stage(pa.table({"id": ["a", "b"], "text": [a, b]}))
        stats = stage.report()
    assert t.column("dup_of").to_pylist() == [None, "a" if dropped else None], j
    assert stats["near_dups"] == int(dropped) and stats["exact_dups"] == 0


def test_exact_duplicates_ignore_case_and_layout(tmp_path):
    a = "Binary search halves the interval.\n\n    def f(x):\n        return x"
    b = "binary  search halves the INTERVAL. def f(x): return x"
    with Dedup(CFG, tmp_path) as stage:
        t = stage(pa.table({"id": ["a", "b", "c"], "text": [a, b, "something else entirely"]}))
        stats = stage.report()
    assert t.column("dup_of").to_pylist() == [None, "a", None]
    assert stats["exact_dups"] == 1 and stats["kept"] == 2


def corpus(n_base=40, seed=0):
    """Clusters of variants (chains: each variant edits the previous one), shuffled."""
    rng = random.Random(seed)
    docs = []
    for c in range(n_base):
        w = words(rng, 300)
        docs.append(" ".join(w))
        for k in range(rng.randrange(4)):
            w = edited(rng, w, rng.choice([2, 6, 10, 14])).split()
            docs.append(" ".join(w))
        if rng.random() < 0.2:
            docs.append(docs[-1].upper())
    rng.shuffle(docs)
    return pa.table({"id": [f"d{i}" for i in range(len(docs))], "text": docs})


def run_chunks(tmp, table, size, order, workers=1):
    chunks = [table.slice(i, size) for i in range(0, len(table), size)]
    dd = Deduplicator(tmp, CFG, workers)
    out = {}
    try:
        for c in order(len(chunks)):
            for d in dd.add(c, chunks[c].column("id").to_pylist(), chunks[c].column("text").to_pylist()):
                out.update(zip(d.ids, d.dup_of))
        return out, dd.report()
    finally:
        dd.close()


def test_split_invariance(tmp_path):
    table = corpus()
    one, s1 = run_chunks(tmp_path / "one", table, len(table), range, workers=2)
    assert s1["near_dups"] > 10 and s1["exact_dups"] > 0 and s1["kept"] >= 40
    by_chunk, _ = run_chunks(tmp_path / "chunks", table, 13, range)
    rng = random.Random(1)
    shuffled, _ = run_chunks(tmp_path / "shuffled", table, 13, lambda n: rng.sample(range(n), n))
    assert len(one) == len(table)
    assert by_chunk == one
    assert shuffled == one


def test_resume_reuses_signatures_and_verdicts(tmp_path):
    table = corpus(20, seed=3)
    full, _ = run_chunks(tmp_path / "ref", table, 10, range)
    chunks = [table.slice(i, 10) for i in range(0, len(table), 10)]
    dd = Deduplicator(tmp_path / "r", CFG)
    dd.add(2, chunks[2].column("id").to_pylist(), chunks[2].column("text").to_pylist())  # parked: 0, 1 missing
    dd.add(0, chunks[0].column("id").to_pylist(), chunks[0].column("text").to_pylist())
    assert dd.report()["parked_chunks"] == [2]
    # A new process: chunk 0's verdicts reload, chunk 2's signature is not recomputed.
    out, stats = run_chunks(tmp_path / "r", table, 10, range)
    assert stats["signatures_loaded"] == len(chunks[2])
    assert stats["signed"] == len(table) - len(chunks[0]) - len(chunks[2])
    assert out == full


def test_config_validation_and_changed_settings(tmp_path):
    with pytest.raises(ConfigError, match="exceeds num_perm"):
        load_recipe("textbooks", {"dedup.bands": 30})
    Deduplicator(tmp_path, CFG)
    with pytest.raises(ConfigError, match="different dedup settings"):
        Deduplicator(tmp_path, DedupConfig(threshold=0.9))
    with pytest.raises(ConfigError, match="threshold"):
        load_recipe("textbooks", {"dedup.threshold": 1.5})


def make_run(tmp_path, texts, gates, chunk=4):
    recipe = load_recipe("textbooks")
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    schema = record_schema(recipe.axes)
    rows = [{"id": f"{recipe.hash}-{i}", "index": i, "text": t, "gate": g} for i, (t, g) in enumerate(zip(texts, gates))]
    for c in range(0, len(rows), chunk):
        write_parquet_atomic(pa.Table.from_pylist(rows[c : c + chunk], schema=schema), run / "generated" / f"chunk-{c // chunk:06d}.parquet")
    return run, [r["id"] for r in rows]


def test_cli_run_and_files(tmp_path, capsys):
    rng = random.Random(5)
    base = words(rng, 200)
    a, near = " ".join(base), edited(rng, base, 3)
    texts = [a, "other " + " ".join(words(rng, 50)), a, near, near, "x " * 40, a.upper(), None]
    gates = ["accepted", "accepted", "too_short", None, "accepted", "accepted", "accepted", None]
    run, ids = make_run(tmp_path, texts, gates)
    assert main(["dedup", "--run", str(run), "--workers", "1"]) == 0
    got = pq.read_table(run / "generated" / "chunk-000000.parquet").column("dup_of").to_pylist()
    got += pq.read_table(run / "generated" / "chunk-000001.parquet").column("dup_of").to_pylist()
    # row 2 was rejected by the gate, so it is not considered; row 3 (gate not run) is.
    assert got == [None, None, None, ids[0], ids[0], None, ids[0], None]
    stats = json.loads((run / "dedup" / "stats.json").read_text())
    assert (stats["docs_in"], stats["exact_dups"], stats["near_dups"]) == (6, 1, 2)
    assert pq.read_schema(run / "generated" / "chunk-000000.parquet") == record_schema(load_recipe("textbooks").axes)
    mtime = (run / "generated" / "chunk-000001.parquet").stat().st_mtime_ns
    assert main(["dedup", "--run", str(run), "--workers", "1"]) == 0  # rerun: same verdicts, no rewrite
    assert (run / "generated" / "chunk-000001.parquet").stat().st_mtime_ns == mtime
    capsys.readouterr()

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "text": t, "extra": i}) + "\n" for i, t in enumerate([a, near, "new"])))
    assert main(["dedup", "--input", str(src), "--output", str(tmp_path / "out.jsonl"), "--workers", "1"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["dup_of"], r["extra"]) for r in rows] == [("r0", None, 0), ("r1", "r0", 1), ("r2", None, 2)]

    assert main(["dedup", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["dedup", "--run", str(tmp_path)]) == 2
    assert "no recipe.yaml" in capsys.readouterr().err


def test_saved_signatures_of_other_texts_are_recomputed(tmp_path):
    dd = Deduplicator(tmp_path, CFG)
    dd.add(1, ["a", "b"], ["first text here", "second text here"])  # parked: chunk 0 missing
    dd = Deduplicator(tmp_path, CFG)
    dd.add(1, ["a", "b"], ["first text here", "another text"])
    assert (dd.stats["signatures_loaded"], dd.stats["signed"]) == (0, 2)
    dd.add(1, ["a", "b"], ["first text here", "another text"])
    assert dd.stats["signatures_loaded"] == 2


def test_compiled_normalisation_and_words_equal_python():
    """The kernels' normalised bytes equal ``normalise``, and their shingles equal those of the
    Python definition (words of normalise(text).translate(_PUNCT), FNV-1a-64 + fmix64 per
    word, the polynomial window, folded to 32 bits), on ASCII and non-ASCII text."""
    from corpus.dedup import _PUNCT, normalise, normalised, shingle_hashes, window_hashes

    spaces = [chr(c) for c in range(0x3001) if chr(c).isspace()]
    alphabet = list("abcXYZ_09 .,;:'\"()-\u00e9\u00c5\u0130\u1e9e\u00a8\ufb01\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb") + spaces
    rng = random.Random(7)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60))) for _ in range(2000)]
    texts += ["", " \t\n", "A\x1cB\x1fC  D\t\n", "\u2028x\u2029y\x85z\u1680", "Caf\u00e9 \u2014 na\u00efve", " ".join(words(rng, 50))]
    norm, offs = normalised(texts)
    assert [bytes(norm[offs[i] : offs[i + 1]]) for i in range(len(texts))] == [normalise(t).encode() for t in texts]

    def fnv_fmix(b):
        h, m = 0xCBF29CE484222325, (1 << 64) - 1
        for c in b:
            h = ((h ^ c) * 0x100000001B3) & m
        for s, k in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53), (33, None)):
            h ^= h >> s
            h = (h * k) & m if k else h
        return h

    for t in texts:
        w = normalise(t).translate(_PUNCT).split()
        v = np.array([fnv_fmix(x.encode()) for x in w], dtype=np.uint64)
        want = np.empty(0, np.uint32)
        if len(v):
            h = window_hashes(v, min(CFG.shingle_size, len(v)))
            want = ((h >> np.uint64(32)) ^ h).astype(np.uint32)
        assert np.array_equal(shingle_hashes(t, CFG), want), t


def test_cli_input_in_several_chunks_matches_one(tmp_path):
    """--input keeps its state ephemeral (sketches written only once a later chunk is decided):
    verdicts across chunks equal those of one chunk and of a durable run."""
    table = corpus(30, seed=4)
    src = tmp_path / "in.parquet"
    write_parquet_atomic(table, src)
    outs = []
    for rows in ("1000", "7"):
        dst = tmp_path / f"out-{rows}.parquet"
        assert main(["dedup", "--input", str(src), "--output", str(dst), "--workers", "1", "--chunk-rows", rows]) == 0
        outs.append(pq.read_table(dst).column("dup_of").to_pylist())
    durable, _ = run_chunks(tmp_path / "durable", table, 7, range)
    assert outs[0] == outs[1] == [durable[i] for i in table.column("id").to_pylist()]
    assert sum(d is not None for d in outs[0]) > 10
