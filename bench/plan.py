"""Benchmark: compute N prompt plans (entities + rendered prompt) on one core.

Target (issue 2): the plan of a 1e9-token corpus (about 2M prompts) in under 60 s on one
core, with memory flat in N. Prints prompts/s for entities alone and with rendering,
and the process RSS at several points of the run (flat = no per-prompt state kept).

    .venv/bin/python bench/plan.py            # N = 2,000,000
    .venv/bin/python bench/plan.py --n 200000
"""

import argparse
import time

import psutil

from corpus.plan import Plan
from corpus.recipe import load_recipe


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--recipe", default="textbooks")
    args = ap.parse_args()
    proc = psutil.Process()
    plan = Plan(load_recipe(args.recipe))
    print(f"recipe {plan.recipe.name}: {plan.L:,} leaves, {plan.combinations:,} combinations")

    t = time.perf_counter()
    for i in range(args.n):
        plan.prompt(i)
    t_ent = time.perf_counter() - t
    print(f"entities only:      {args.n:,} prompts in {t_ent:6.1f} s = {args.n / t_ent:10,.0f} prompts/s")

    marks = {args.n // 10, args.n // 2, args.n - 1}
    rss = []
    chars = 0
    t = time.perf_counter()
    for i in range(args.n):
        p = plan.prompt(i)
        chars += len(plan.render(p)) + len(plan.system(p) or "")
        if i in marks:
            rss.append((i + 1, proc.memory_info().rss / 2**20))
    t_all = time.perf_counter() - t
    print(f"entities + render:  {args.n:,} prompts in {t_all:6.1f} s = {args.n / t_all:10,.0f} prompts/s "
          f"({chars / args.n:,.0f} chars/prompt)")
    print("RSS after " + ", ".join(f"{n:,} prompts: {m:,.0f} MiB" for n, m in rss))
    print(f"projected for 2,000,000 prompts: {2_000_000 / (args.n / t_all):.1f} s (target < 60 s); "
          f"RSS growth from first to last mark: {rss[-1][1] - rss[0][1]:+.1f} MiB")


if __name__ == "__main__":
    main()
