"""The budgeted build loop on the smoke model: stop rule, resume after kill -9, finalize
equivalence, low-yield diagnosis, loadable output. Engines are real (the shared in-process
vLLM engine and a real `vllm serve` on loopback)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.cli import main
from corpus.recipe import load_recipe
from corpus.runner import EXIT_LOW_YIELD, EXIT_NEED_CHUNKS, build

SMALL = {"chunk_size": 16, "sampling.max_tokens": 48}


def _corpus(run: Path):
    t = pq.read_table(sorted((run / "corpus").glob("part-*.parquet")))
    return t.column("id").to_pylist(), t.column("text").to_pylist(), t.column("n_tokens").to_pylist()


def test_build_stops_at_the_first_record_reaching_the_budget(vllm_engine, smoke_model, tmp_path, capsys):
    recipe = load_recipe("smoke", {"engine.model": str(smoke_model), **SMALL})
    run = tmp_path / "run"
    stats = build(recipe, run, 1500, engine=vllm_engine)
    ids, texts, n = _corpus(run)
    assert sum(n) >= 1500 > sum(n) - n[-1]  # the last record is the first to reach the budget
    assert stats["complete"] and stats["last_id"] == ids[-1] and stats["tokens"]["corpus"] == sum(n)
    idx = [int(i.rsplit("-", 1)[1]) for i in ids]
    assert idx == sorted(idx) and all(i.startswith(recipe.hash) for i in ids)
    table = pq.read_table(sorted((run / "corpus").glob("part-*.parquet")))
    for col in ["topic", "audience", *recipe.axes, "model", "seed", "prompt"]:
        assert table.column(col).null_count == 0, col
    assert set(table.column("gate").to_pylist()) == {"accepted"}
    assert table.column("dup_of").null_count == table.num_rows
    # Every chunk before the last was needed: without it the budget would not have been met.
    assert stats["counts"]["chunks"] == len(list((run / "generated").glob("chunk-*.parquet")))

    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(run / "corpus"), split="train")
    assert ds.num_rows == len(ids) and ds[0]["topic"]
    card = (run / "corpus" / "README.md").read_text()
    assert card.startswith("---\n") and recipe.hash in card and f"{sum(n):,}" in card
    assert json.loads((run / "stats.json").read_text())["counts"]["kept"] == len(ids)

    # Inspecting: a record by id with its entities, the stats as JSON.
    assert main(["show", "--run", str(run), "--id", ids[1]]) == 0
    out = capsys.readouterr().out
    assert f"=== {ids[1]}" in out and f"topic: {table.column('topic')[1]}" in out and texts[1] in out
    assert main(["stats", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"]["corpus"] == sum(n)

    # Rerunning a finished build generates nothing and gives the same corpus.
    mtimes = {p: p.stat().st_mtime_ns for p in (run / "generated").iterdir()}
    build(recipe, run, 1500, engine=vllm_engine)
    assert _corpus(run) == (ids, texts, n)
    assert {p: p.stat().st_mtime_ns for p in (run / "generated").iterdir()} == mtimes


def test_a_recipe_of_word_lists_builds_with_every_entity_as_a_label(vllm_engine, smoke_model, tmp_path):
    # tinystories: no topic tree, no audience; the smoke model's noise passes the checks the smoke recipe keeps.
    recipe = load_recipe("tinystories", {"engine.model": str(smoke_model), **SMALL, "gate.skip": load_recipe("smoke").gate.skip,
                                         "gate.min_words": 1})
    run = tmp_path / "run"
    stats = build(recipe, run, 300, engine=vllm_engine)
    table = pq.read_table(sorted((run / "corpus").glob("part-*.parquet")))
    assert table.num_rows == stats["counts"]["kept"] > 0
    for col in ("verb", "noun", "adjective", "features"):
        assert table.column(col).null_count == 0, col
    assert table.column("topic").null_count == table.column("audience").null_count == table.num_rows
    assert all(len(set(f.split("; "))) == 2 for f in table.column("features").to_pylist())
    d = stats["diversity"]
    assert d["primary"] == "verb" and d["leaves_total"] == len(recipe.words["verb"].words) and d["leaves_covered"] > 0
    card = (run / "corpus" / "README.md").read_text()
    assert "- stories" in card and "- textbooks" not in card and "Short stories in very simple words" in card
    assert f"one value of noun ({len(recipe.words['noun'].words):,})" in card and "values of verb appear" in card
    report = (run / "report.md").read_text()
    assert "values of verb covered" in report and (run / "report-axes.png").stat().st_size > 0


def test_default_build_prints_only_its_own_lines(smoke_model, tmp_path):
    """vLLM in process (its engine processes included) is quiet unless -v: the output holds the
    build's own lines and nothing else."""
    cmd = [sys.executable, "-m", "corpus", "build", "--recipe", "smoke", "--model", str(smoke_model), "--tokens", "300",
           "--out", str(tmp_path / "run"), "--set", "chunk_size=16", "--set", "sampling.max_tokens=48",
           "--set", "engine.gpu_memory_utilization=0.2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    own = ("[build] ", "note: the smoke model", "corpus: ", "  corpus: ", "  card: ", "  stats: ")
    assert lines and all(ln.startswith(own) for ln in lines), "\n".join(ln for ln in lines if not ln.startswith(own))[:3000]
    assert any(ln.startswith("[build] ") and ln.endswith("done") for ln in lines)


def test_low_yield_stops_with_a_diagnosis(vllm_engine, smoke_model, tmp_path, capsys):
    argv = ["build", "--recipe", "smoke", "--model", str(smoke_model), "--tokens", "1e6", "--out", str(tmp_path / "run"),
            "--set", "chunk_size=16", "--set", "sampling.max_tokens=48", "--set", "gate.max_words=3"]
    assert main(argv) == EXIT_LOW_YIELD
    err = capsys.readouterr().err
    assert "out of reach" in err and "after 16 prompts: 0 kept (0.0%)" in err
    assert "too_long: 16 (100.0%)" in err and "      | " in err  # a sample of rejected texts' first lines


# -- interrupted and distributed runs, through a real `vllm serve` --------------------------
def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "corpus", *args]


def _flags(server, model) -> list[str]:
    return ["--recipe", "smoke", "--engine", "openai", "--base-url", server, "--model", str(model),
            "--set", "chunk_size=16", "--set", "sampling.max_tokens=48"]


TOKENS = "4000"


@pytest.fixture(scope="module")
def reference(vllm_server, smoke_model, tmp_path_factory):
    """An uninterrupted build through the server."""
    run = tmp_path_factory.mktemp("reference") / "run"
    r = subprocess.run(_cli("build", "--tokens", TOKENS, "--out", str(run), *_flags(vllm_server, smoke_model)),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads((run / "stats.json").read_text())
    assert stats["counts"]["chunks"] >= 3  # enough chunks for interruptions to land mid-run
    return run, stats


def test_resume_after_kill_9_gives_the_same_corpus(reference, vllm_server, smoke_model, tmp_path):
    ref_run, ref_stats = reference
    run = tmp_path / "run"
    cmd = _cli("build", "--tokens", TOKENS, "--out", str(run), *_flags(vllm_server, smoke_model))
    rng = random.Random(0)
    kills = 0
    n = ref_stats["counts"]["chunks"]
    # Kill once 1, about half, then all but one of the chunks exist, plus a random delay: the
    # moments land inside generation, gating, dedup or writing, however fast the machine is.
    for target in (1, max(1, n // 2), n - 1):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while p.poll() is None and len(list(run.glob("generated/chunk-*.parquet"))) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            kills += 1
        p.wait()
    assert kills >= 1
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _corpus(run) == _corpus(ref_run)
    assert json.loads((run / "stats.json").read_text())["tokens"]["corpus"] == ref_stats["tokens"]["corpus"]
    assert not list(run.glob("generated/.*tmp*"))  # no temporary files left behind


def test_finalize_over_array_tasks_equals_build(reference, vllm_server, smoke_model, tmp_path):
    ref_run, ref_stats = reference
    run = tmp_path / "run"
    n = ref_stats["counts"]["chunks"]
    tasks = [
        subprocess.Popen(_cli("generate", "--out", str(run), "--chunks", f"0:{n - 1}", "--array-task", str(k), "--array-size", "2",
                              *_flags(vllm_server, smoke_model)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for k in range(2)
    ]
    for t in tasks:
        assert t.wait(600) == 0, t.stderr.read()[-3000:]
    # One chunk short: finalize says how many more are needed.
    r = subprocess.run(_cli("finalize", "--run", str(run), "--tokens", TOKENS), capture_output=True, text=True, timeout=600)
    assert r.returncode == EXIT_NEED_CHUNKS, r.stderr[-3000:]
    assert f"chunk {n - 1} is missing" in r.stderr and "more chunks" in r.stderr
    r = subprocess.run(_cli("generate", "--out", str(run), "--chunks", f"{n - 1}:{n}", *_flags(vllm_server, smoke_model)),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(_cli("finalize", "--run", str(run), "--tokens", TOKENS), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _corpus(run) == _corpus(ref_run)
