"""``corpus plan`` and ``corpus prompts``: the prompt plan (``corpus topics``: corpus.cli.topics)."""

from __future__ import annotations

import json
import math

from corpus.cli.common import (
    fraction,
    index_range,
    parse_tokens,
    recipe_arg,
    recipe_from_args,
)


# -- plan ---------------------------------------------------------------------------
def cmd_plan(args) -> int:
    recipe = recipe_from_args(args)
    from corpus.plan import Plan

    plan = Plan(recipe)
    accepted_docs = math.ceil(args.tokens / args.tokens_per_doc)
    prompts = math.ceil(accepted_docs / args.acceptance)
    cov = plan.coverage(prompts)
    # Generated tokens: every prompt's completion (accepted or not), plus the outline stage.
    gen_per_prompt = args.tokens_per_doc + (recipe.sampling.outline_max_tokens if recipe.templates.outline else 0)
    generated = prompts * gen_per_prompt
    examples = [plan.prompt(i) for i in range(min(args.examples, prompts))]
    # Input tokens ~ characters / 4 (English prose); measured on the example prompts.
    in_chars = sum(len(plan.render(p)) + len(plan.system(p) or "") for p in examples) / max(1, len(examples))
    input_tokens = prompts * in_chars / 4
    out = {
        "tokens": args.tokens,
        "recipe": recipe.name,
        "recipe_hash": recipe.hash,
        "seed": recipe.seed,
        "assumptions": {
            "tokens_per_doc": args.tokens_per_doc,
            "acceptance": args.acceptance,
            "throughput_tokens_per_s_per_gpu": args.throughput,
            "price_usd_per_1k_output_tokens": args.price,
            "price_usd_per_1k_input_tokens": args.price_input,
            "input_tokens_per_prompt": round(in_chars / 4),
        },
        "accepted_docs": accepted_docs,
        **cov,
        "generated_tokens": generated,
        "gpu_hours": generated / args.throughput / 3600,
        "api_cost_usd": generated / 1000 * args.price + input_tokens / 1000 * args.price_input,
        "chunks": math.ceil(prompts / recipe.chunk_size),
        "examples": [
            {"id": p.id, "entities": p.entities, "system": plan.system(p), "prompt": plan.render(p)} for p in examples
        ],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    a = out["assumptions"]
    print(f"Plan for {args.tokens:,} tokens with recipe {recipe.name} ({recipe.hash}), seed {recipe.seed}")
    print(f"  assumptions: {a['tokens_per_doc']} tokens per accepted extract, {a['acceptance']:.0%} of prompts accepted")
    print(f"               (gate + dedup), {a['throughput_tokens_per_s_per_gpu']:,} generated tokens/s per GPU")
    print(f"  prompts:     {prompts:,} in {out['chunks']:,} chunks of {recipe.chunk_size}")
    print(f"  leaves:      {cov['leaves_covered']:,}/{cov['leaves']:,} covered, {cov['min_per_leaf']}-{cov['max_per_leaf']} prompts each")
    print(f"  pairs:       {cov['pairs_covered']:,}/{cov['pairs']:,} (leaf, audience) pairs covered")
    print(f"  combos:      {cov['combinations_covered']:,}/{cov['combinations']:,} distinct, {cov['repeated_combinations']:,} repeated")
    for axis, counts in cov["axes"].items():
        print(f"  {axis}: " + ", ".join(f"{v} {n:,}" for v, n in counts.items()))
    print(f"  generation:  {generated:,} tokens = {out['gpu_hours']:,.1f} GPU-hours at {args.throughput:,} tokens/s")
    print(f"  via an API:  ${out['api_cost_usd']:,.0f} at ${args.price}/1K output and ${args.price_input}/1K input tokens")
    for e in out["examples"]:
        print(f"\n--- {e['id']}  " + "; ".join(f"{k}={v}" for k, v in e["entities"].items()))
        print(e["prompt"])
    return 0


# -- prompts ------------------------------------------------------------------------
def cmd_prompts(args) -> int:
    recipe = recipe_from_args(args)
    from corpus.plan import Plan

    plan = Plan(recipe)
    a, b = args.range
    for i in range(a, b):
        p = plan.prompt(i)
        row = {"id": p.id, "index": p.index, "seed": p.seed, **p.entities, "system": plan.system(p)}
        if recipe.templates.outline:
            row["outline_prompt"] = plan.render(p, "outline")
        else:
            row["prompt"] = plan.render(p)
        if args.json:
            print(json.dumps(row))
        else:
            print(f"--- {p.id} (seed {p.seed})  " + "; ".join(f"{k}={v}" for k, v in p.entities.items()))
            print(row.get("prompt") or row["outline_prompt"])
    return 0


def register(sub) -> None:
    from corpus.plan import ACCEPTANCE, TOKENS_PER_DOC

    p = sub.add_parser(
        "plan",
        help="prompts, coverage and cost for a token budget (generates nothing)",
        description="Compute how many prompts a token budget needs, the coverage those prompts reach "
        "(leaves, (leaf, audience) pairs, combinations, axis balance) and what generating them costs. "
        "It prints; it does not generate. The estimates rest on the stated assumptions (flags below).",
    )
    p.add_argument("--tokens", type=parse_tokens, required=True, help="corpus size in tokens: 1e9, 1_000_000, 500M, 2B")
    recipe_arg(p)
    p.add_argument("--tokens-per-doc", type=float, default=TOKENS_PER_DOC, help=f"tokens per accepted extract (default {TOKENS_PER_DOC})")
    p.add_argument("--acceptance", type=fraction, default=ACCEPTANCE, help=f"share of prompts that pass gate and dedup (default {ACCEPTANCE})")
    p.add_argument("--throughput", type=float, default=3000, help="generated tokens/s per GPU (default 3000: vLLM, 7-8B model, one H100)")
    p.add_argument("--price", type=float, default=0.0006, help="API price in USD per 1K output tokens (default 0.0006)")
    p.add_argument("--price-input", type=float, default=0.00015, help="API price in USD per 1K input tokens (default 0.00015)")
    p.add_argument("--examples", type=int, default=3, help="rendered example prompts to show (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("prompts", help="print prompts A..B-1 with their entities", description="Print planned prompts A..B-1 (their ids, seeds, entities and rendered text); prompt i is computed on its own, so any range is instant.")
    p.add_argument("--range", type=index_range, required=True, metavar="A:B", help="prompt indices A..B-1")
    recipe_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_prompts)
