"""Acceptance and diversity of each built-in recipe with one teacher: what the gate keeps of the same
number of prompts per recipe, why it rejects the rest, and the text diversity of what it keeps.

One vLLM engine (the first recipe's engine settings, ``--model``) generates ``--prompts`` prompts of
every recipe (chunk size = ``--prompts``, so one chunk each) into OUT/RECIPE/, then the recipe's own
gate runs over them. Prints a Markdown table (prompts, accepted, acceptance, top rejections, and the
diversity metrics distinct-2, opener top share and pairwise Jaccard of every generated text and of the
accepted ones), and for
``exercises`` the distinct function names of the accepted exercises; writes OUT/recipes.json.
Rerunning with the same OUT reuses the generated chunks (the gate verdicts too).

    PYTHONPATH=$PWD .venv/bin/python -m corpus teacher runs/teacher
    PYTHONPATH=$PWD .venv/bin/python bench/recipes.py --model runs/teacher     # 4 x 64 prompts, ~12 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from corpus.diversity import measure
from corpus.engines import make_engine
from corpus.generate import generate_run
from corpus.recipe import load_recipe
from corpus.run import RunDir
from corpus.runner import apply_to_run

RECIPES = "textbooks-tiny,textbooks-outline,exercises,tinystories"
METRICS = ("distinct_2", "opener_top_share", "pairwise_jaccard")  # corpus.diversity's definitions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/teacher", help="the teacher model directory (default: runs/teacher)")
    ap.add_argument("--recipes", default=RECIPES, help=f"comma-separated recipes (default: {RECIPES})")
    ap.add_argument("--prompts", type=int, default=64, help="prompts per recipe (default: 64)")
    ap.add_argument("--out", default="runs/bench-recipes", help="run directories go here (default: runs/bench-recipes)")
    args = ap.parse_args()
    names = args.recipes.split(",")
    recipes = [load_recipe(r, {"engine.model": args.model, "chunk_size": args.prompts}) for r in names]
    engine = None
    results = {}
    try:
        for recipe in recipes:
            out = Path(args.out) / recipe.name
            if not RunDir(out).done_chunks():
                engine = engine or make_engine(recipes[0].engine)
            generate_run(recipe, out, [0], engine=engine)
            apply_to_run(RunDir(out), ("gate",))
            t = pq.read_table(RunDir(out).chunk_path(0)).to_pylist()
            gates = Counter(r["gate"] for r in t)
            kept = [r for r in t if r["gate"] == "accepted"]
            d, g = measure([r["text"] for r in kept]), measure([r["text"] or "" for r in t])
            res = {
                "prompts": len(t),
                "accepted": len(kept),
                "acceptance": len(kept) / len(t),
                "rejections": dict(Counter({k: v for k, v in gates.items() if k != "accepted"}).most_common()),
                "completion_tokens": sum(r["completion_tokens"] or 0 for r in t),
                "accepted_texts": {k: d[k] for k in METRICS},
                "generated_texts": {k: g[k] for k in METRICS},  # every completion: compares recipes that keep nothing
            }
            if recipe.gate.exercise:  # the first function each exercise defines (accepted: its statement's)
                fn = Counter(m.group(1) for r in t if (m := re.search(r"def\s+(\w+)", r["statement"] or r["text"] or "")))
                ok = Counter(m.group(1) for r in kept if (m := re.search(r"def\s+(\w+)", r["statement"])))
                res["function_names"] = {"generated": len(fn), "accepted": len(ok), "top": fn.most_common(5)}
            results[recipe.name] = res
    finally:
        if engine is not None:
            engine.close()
    rows = ["| recipe | prompts | accepted | acceptance | top rejections | " + " | ".join(f"{m} (generated / accepted)" for m in METRICS) + " |",
            "|---|---|---|---|---|" + "---|" * len(METRICS)]
    f = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    for name, r in results.items():
        top = ", ".join(f"{k} {v}" for k, v in list(r["rejections"].items())[:4])
        rows.append(f"| {name} | {r['prompts']} | {r['accepted']} | {r['acceptance']:.1%} | {top} | "
                    + " | ".join(f"{f(r['generated_texts'][m])} / {f(r['accepted_texts'][m])}" for m in METRICS) + " |")
    print("\n".join(rows))
    if "exercises" in results and "function_names" in results["exercises"]:
        fn = results["exercises"]["function_names"]
        print(f"\nexercises: {fn['generated']} distinct function names in {results['exercises']['prompts']} generated, "
              f"{fn['accepted']} in {results['exercises']['accepted']} accepted; most common: {fn['top']}")
    Path(args.out, "recipes.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
