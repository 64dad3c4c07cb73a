"""Text diversity metrics (corpus.diversity): known answers worked out by hand, the CLI's --json
and --by, the bounded distinct counter, and the block every build writes (stats, report, plots, card)."""

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.cli import main
from corpus.diversity import DistinctCounter, measure, measure_run
from corpus.recipe import load_recipe
from corpus.run import RunDir
from corpus.runner import build

# Words (NFKC, lower case, \w+):  doc 0: the cat sat the cat ran   doc 1: the cat sat
#                                 doc 2: full width (full-width letters, NFKC)   doc 3: nothing
WORDS = ["The cat sat. The cat ran!", "the CAT sat", "\uff26\uff55\uff4c\uff4c width", ""]


def test_word_metrics_known_answers():
    m = measure(WORDS)
    assert m["documents"] == 4 and m["words"] == 11
    # 1-grams: the cat sat ran full width = 6 distinct of 11.
    assert m["distinct_1"] == 6 / 11
    # 2-grams: doc 0 has 5 (the cat twice), doc 1 has 2, doc 2 has 1 = 8; distinct: the cat, cat sat,
    # sat the, cat ran, full width = 5. ("ran the" would appear if n-grams crossed documents.)
    assert m["distinct_2"] == 5 / 8
    # 3-grams: doc 0: the cat sat, cat sat the, sat the cat, the cat ran; doc 1: the cat sat -> 4 of 5.
    assert m["distinct_3"] == 4 / 5
    # 4-grams: only doc 0's three, all distinct.
    assert m["distinct_4"] == 1.0
    assert not m["distinct_estimated"]
    # Openers: "the cat sat" twice, "full width" (fewer than three words), "" (none).
    assert m["opener_top_share"] == 2 / 4
    assert m["openers_top10"] == [["the cat sat", 2], ["full width", 1], ["", 1]]
    joined = "\n".join(WORDS).encode()
    assert m["compression_ratio"] == len(joined) / len(gzip.compress(joined, compresslevel=9))
    # Word sets {the cat sat ran}, {the cat sat}, {full width}, {}: only the first pair overlaps (3/4).
    assert m["pairwise_jaccard"] == pytest.approx(0.75 / 6) and m["pairwise_sample"] == 4
    assert m["near_duplicate_rate"] is None and m["snippets"] == 0 and m["identical_snippet_share"] is None


CODE = [
    "First.\n\n```python\nimport os.path, sys\nfrom collections import Counter\n\ndef f(x):  # one\n    return x\n\nprint(f(1))\n```\n",
    "Again.\n\n```python\nimport os.path,   sys\nfrom collections import Counter\ndef f(x):\n    return x   # another comment\nprint(f(1))\n```\n",
    "Third.\n\n```python\nasync def g():\n    return 2\n\nclass A:\n    def f(self):\n        return 1\n```\n",
]


def test_code_metrics_known_answers():
    m = measure(CODE)
    # Snippets 0 and 1 differ only in comments and whitespace: one of three repeats an earlier one.
    assert m["snippets"] == 3 and m["identical_snippet_share"] == 1 / 3
    # def f, def f, async def g, def f (a method): four definitions, two names.
    assert m["function_definitions"] == 4 and m["function_names_distinct"] == 2
    assert m["imports_distinct"] == 3 and m["imports_top10"] == [["os", 2], ["sys", 2], ["collections", 2]]


def test_long_texts_compress_as_gzip_does():
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{int(k)}" for k in rng.integers(0, 500, 2000)) for _ in range(60)]  # ~600 KB
    joined = "\n".join(texts).encode()
    assert measure(texts)["compression_ratio"] == len(joined) / len(gzip.compress(joined, compresslevel=9))


def test_the_distinct_counter_is_exact_below_its_cap_and_bounded_past_it():
    rng = np.random.default_rng(1)
    exact = DistinctCounter(cap=10_000)
    values = rng.integers(0, 2**63, 5_000, dtype=np.uint64)
    exact.add(values)
    exact.add(values[:100])
    assert exact.count() == 5_000 and not exact.estimated
    big = DistinctCounter(cap=4_096)
    for _ in range(50):
        big.add(rng.integers(0, 2**63, 4_000, dtype=np.uint64))  # 200,000 distinct (collisions: none expected)
    n = big.count()
    assert big.estimated and len(big.kept) <= 4_096
    assert abs(n - 200_000) / 200_000 < 0.1  # relative error ~1/sqrt(2048..4096): 4 sigma


def test_the_pairwise_sample_is_a_seeded_reservoir():
    texts = [f"doc {i} word{i % 7} shared" for i in range(50)]
    a, b, c = measure(texts, sample=10), measure(texts, sample=10), measure(texts, sample=10, seed=1)
    assert a["pairwise_sample"] == 10 and a["pairwise_jaccard"] == b["pairwise_jaccard"] != c["pairwise_jaccard"]


def test_cli_json_on_a_jsonl_file_with_by(tmp_path, capsys):
    rows = [{"text": t, "audience": aud} for t, aud in zip(WORDS, ["kids", "kids", "adults", "adults"])]
    rows.append({"text": WORDS[0], "audience": "kids"})  # an exact duplicate of document 0
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["diversity", "--input", str(f), "--json", "--by", "audience"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["documents"] == 5 and out["words"] == 17 and out["near_duplicate_rate"] == 1 / 5
    # The duplicate adds 5 2-grams and no new one.
    assert out["distinct_2"] == 5 / 13 and out["opener_top_share"] == 3 / 5
    by = out["by"]
    assert by["axis"] == "audience" and list(by["values"]) == ["adults", "kids"]
    kids = by["values"]["kids"]
    assert kids["documents"] == 3 and kids["distinct_1"] == 4 / 15 and kids["openers_top10"] == [["the cat sat", 3]]
    assert by["values"]["adults"]["distinct_1"] == 1.0
    # The same rows as Parquet give the same numbers; the table form prints them.
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    assert main(["diversity", "--input", str(tmp_path / "in.parquet"), "--json", "--by", "audience"]) == 0
    assert json.loads(capsys.readouterr().out) == out
    assert main(["diversity", "--input", str(f)]) == 0
    table = capsys.readouterr().out
    assert "distinct_2" in table and "0.3846" in table and "the cat sat" in table


def test_cli_errors_name_the_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"txt": "b"}\n')
    assert main(["diversity", "--input", str(bad)]) == 2
    assert f"{bad}:2: expected an object with keys text" in capsys.readouterr().err
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "t.parquet")
    assert main(["diversity", "--input", str(tmp_path / "t.parquet"), "--by", "audience"]) == 2
    assert "no column audience (it has text)" in capsys.readouterr().err
    assert main(["diversity", "--input", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_a_build_reports_its_diversity(vllm_engine, smoke_model, tmp_path, capsys):
    # Smoke noise with a word cap the noise often exceeds: both kept and rejected texts to measure.
    recipe = load_recipe("smoke", {"engine.model": str(smoke_model), "chunk_size": 16, "sampling.max_tokens": 48,
                                   "gate.max_words": 9})
    run = tmp_path / "run"
    stats = build(recipe, run, 400, engine=vllm_engine)
    t = stats["text_diversity"]
    assert t["corpus"]["documents"] == stats["counts"]["kept"] > 0
    assert t["rejected"]["documents"] == stats["counts"]["rejected_by_gate"] > 0
    # Streamed during the build == measured afterwards from the files.
    again = measure_run(RunDir(run))
    assert {k: v for k, v in again.items() if k != "rejected"} == t["corpus"] and again["rejected"] == t["rejected"]
    # Kept documents and acceptance per value of every axis (and the topic's branch).
    per = stats["diversity"]["per_value"]
    assert set(per) == {"branch", "audience", *recipe.axes}
    for col, values in per.items():
        assert sum(v["prompts"] for v in values.values()) == stats["counts"]["prompts"], col
        assert sum(v["kept"] for v in values.values()) == stats["counts"]["kept"], col
        assert all(v["acceptance"] == v["clean"] / v["prompts"] for v in values.values())
    report = (run / "report.md").read_text()
    for name in ("report-axes.png", "report-openers.png", "report-distinct.png"):
        assert f"]({name})" in report and (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert f"| `distinct_2` | {t['corpus']['distinct_2']:.3f} | {t['rejected']['distinct_2']:.3f} |" in report
    card = (run / "corpus" / "README.md").read_text()
    assert f"distinct word 1/2/3/4-grams {t['corpus']['distinct_1']:.2f}/" in card
    # corpus diversity --run prints the same numbers.
    assert main(["diversity", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(again))
    assert main(["diversity", "--run", str(run), "--by", "nope"]) == 2
    assert "--by nope: not an entity" in capsys.readouterr().err
