"""``corpus topics``: the size of a recipe's taxonomies or of one topic file, and ``corpus topics
expand``: a topic tree grown by the teacher (corpus.expand)."""

from __future__ import annotations

import json

from corpus.cli.common import engine_args, recipe_from_args
from corpus.config import ConfigError

DEFAULT_RECIPE = "textbooks"


def _tree(t) -> dict:
    return {
        "topic_files": list(t.sources),
        "leaves": len(t.leaves),
        "min_depth": t.min_depth,
        "max_depth": t.max_depth,
        "branches": t.branch_counts(1),
        "sub_branches": len(t.branch_counts(2)),
        "expansions": len(t.expansions),
    }


def _print_branches(branches: dict[str, int]) -> None:
    print("  leaves per branch:")
    for b, n in branches.items():
        print(f"    {n:5d}  {b}")


def cmd_topics(args) -> int:
    if args.topics:
        from corpus.taxonomy import load_topics

        t = load_topics([args.topics])
        out = _tree(t)
        if args.json:
            print(json.dumps(out, indent=2))
            return 0
        print(f"topics from {', '.join(t.sources)}")
        print(f"  leaves: {out['leaves']:,} (depth {t.min_depth}-{t.max_depth}), sub-branches: {out['sub_branches']}, "
              f"added by expansion: {out['expansions']:,}")
        _print_branches(out["branches"])
        return 0

    args.recipe = args.recipe or DEFAULT_RECIPE
    recipe = recipe_from_args(args)
    from corpus.plan import Plan

    t, plan = recipe.topics, Plan(recipe)
    out = {
        **_tree(t),
        "audiences": len(recipe.audiences),
        "axes": {k: len(v) for k, v in recipe.entity_axes.items()},
        "combinations": plan.combinations,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"recipe {recipe.name} ({recipe.hash}); topics from {', '.join(t.sources)}")
    print(f"  leaves: {out['leaves']:,} (depth {t.min_depth}-{t.max_depth}), sub-branches: {out['sub_branches']}")
    print(f"  audiences: {out['audiences']}")
    for k, v in recipe.entity_axes.items():
        print(f"  axis {k}: {len(v)} values")
    print(f"  distinct combinations: {plan.combinations:,}")
    _print_branches(out["branches"])
    return 0


def cmd_expand(args) -> int:
    from corpus.expand import expand

    recipe = recipe_from_args(args)
    if not recipe.engine.model:
        raise ConfigError("no model given: pass --model (a hub id or local directory; the served name for --engine openai)")
    # The settings, not an engine: a bad --branch or a mismatched OUT.partial is refused before a vLLM start.
    stats = expand(args.topics, recipe.engine, out=args.out, per_leaf=args.per_leaf, seed=recipe.seed, branch=args.branch,
                   max_leaves=args.max_leaves)
    if args.json:
        print(json.dumps(stats, indent=2))
    elif stats["complete"]:
        s = stats
        print(f"wrote {s['out']}: {s['leaves_before']:,} -> {s['leaves_after']:,} leaves; {s['expanded']:,} of {s['selected']:,} "
              f"leaves expanded with {s['accepted']:,} children ({s['requests']:,} requests, {s['resumed']:,} answers resumed)")
        print("  rejected: " + ", ".join(f"{k} {n:,}" for k, n in s["rejected"].items()))
    return 0 if stats["complete"] else 1


def register(sub) -> None:
    p = sub.add_parser(
        "topics",
        usage="corpus topics [--recipe RECIPE | --topics NAME_OR_FILE] [--seed SEED] [--json]\n"
        "       corpus topics expand --topics NAME_OR_FILE --model MODEL --out OUT [options]",
        help="sizes of the recipe's taxonomies (or of one topic file); expand a topic tree with the teacher",
        description="Print the size of the recipe's topic tree (leaves, depth, per-branch counts), audiences, axes and "
        "the number of distinct entity combinations; with --topics, the size of one topic file alone. "
        "`corpus topics expand --help`: grow a topic tree with the teacher.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--recipe", help=f"built-in recipe name or path to a recipe YAML (default: {DEFAULT_RECIPE})")
    which.add_argument("--topics", metavar="NAME_OR_FILE", help="a topic file alone (built-in name or path), no recipe")
    p.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_topics)

    actions = p.add_subparsers(dest="action", metavar="ACTION")
    e = actions.add_parser(
        "expand",
        prog="corpus topics expand",  # not the parent's two-line usage
        help="grow a topic tree: each leaf gets up to K narrower concepts from the teacher",
        description="For each leaf (or each leaf under --branch), ask the teacher for K narrower, teachable concepts "
        "(one request per leaf, seeded from the recipe's seed and the leaf's path; the engine is the recipe's engine section, e.g. --recipe textbooks-tiny for the embedded teacher on a CPU), drop unusable answers (counted by reason: "
        "empty, too long, restating the parent, near-identical siblings, already in the tree, ...) and write a new topic "
        "file in which every expanded leaf is a sub-branch, with provenance per added leaf. Resumable: answers go to "
        "OUT.partial as they come; rerunning the same command continues. Exit codes: 0 written, 1 some requests "
        "failed (rerun to retry them), 2 bad input.",
    )
    e.add_argument("--topics", required=True, metavar="NAME_OR_FILE", help="the topic file to expand (built-in name or path)")
    # The engine: the recipe's engine section (textbooks-tiny: CPU settings for the embedded teacher) with
    # --model, --engine, --base-url and --set applied; the recipe's seed seeds the requests.
    engine_args(e)
    e.add_argument("--branch", metavar="PATH", help='expand only the leaves under this path, e.g. "Algorithms > Sorting"')
    e.add_argument("--per-leaf", type=int, default=3, metavar="K", help="most children per leaf (default 3)")
    e.add_argument("--max-leaves", type=int, metavar="N", help="expand at most the first N selected leaves")
    e.add_argument("--out", required=True, help="the new topic file (YAML); OUT.partial holds the answers while it runs")
    e.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    e.set_defaults(func=cmd_expand)
