"""``corpus diversity``: the text diversity metrics of a run's corpus (and of what its gate
rejected) or of any Parquet/JSONL file with a ``text`` column."""

from __future__ import annotations

import argparse
import json

from corpus.config import ConfigError


def _table(columns: dict[str, dict]) -> str:
    from corpus.diversity import TABLE, format_metric

    names = list(columns)
    width = max(len(k) for k, _ in TABLE)
    cells = [[format_metric(k, columns[n][k], 4) for n in names] for k, _ in TABLE]
    widths = [max(len(n), *(len(r[i]) for r in cells)) for i, n in enumerate(names)]
    lines = [" " * width + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths))]
    lines += [k.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)) for (k, _), row in zip(TABLE, cells)]
    return "\n".join(lines)


BY_COLUMNS = ["documents", "distinct_1", "distinct_2", "distinct_3", "distinct_4", "opener_top_share",
              "compression_ratio", "pairwise_jaccard", "function_names_distinct"]


def _by_table(values: dict[str, dict]) -> str:
    """One row per value (a few metrics; --json has them all)."""
    from corpus.diversity import format_metric

    width = max([5, *(len(v) for v in values)])
    widths = [max(len(c), 8) for c in BY_COLUMNS]
    lines = ["value".ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(BY_COLUMNS, widths))]
    for v, m in values.items():
        lines.append(v.ljust(width) + "  " + "  ".join(format_metric(c, m[c], 4).rjust(w) for c, w in zip(BY_COLUMNS, widths)))
    return "\n".join(lines)


def _openers(name: str, m: dict) -> str:
    lines = [f"top openers ({name}):"]
    lines += [f"  {c:>6,}  {c / m['documents']:6.1%}  {o or '(empty)'}" for o, c in m["openers_top10"]]
    return "\n".join(lines)


def _print(result: dict, rejected: dict | None) -> None:
    columns = {"corpus" if rejected is not None else "input": result}
    if rejected is not None:
        columns["rejected"] = rejected
    print(_table(columns))
    for name, m in columns.items():
        if m["documents"]:
            print(_openers(name, m))
    for name, m in columns.items():
        if "by" in m:
            print(f"\n{name} by {m['by']['axis']}:")
            print(_by_table(m["by"]["values"]))


def cmd_diversity(args) -> int:
    from corpus.diversity import measure_input, measure_run
    from corpus.recipe import load_recipe
    from corpus.run import RunDir

    if (args.run is None) == (args.input is None):
        raise ConfigError("diversity: give either --run runs/NAME or --input FILE")
    if args.sample < 2:
        raise ConfigError(f"diversity: --sample {args.sample}: expected at least 2 documents")
    if args.run:
        run = RunDir(args.run)
        if args.by and args.by != "branch" and args.by not in ("topic", "audience", *run.recipe().entity_axes):
            raise ConfigError(f"diversity: --by {args.by}: not an entity of {args.run} "
                              f"(it has branch, topic, audience{''.join(', ' + a for a in run.recipe().entity_axes)})")
        result = measure_run(run, by=args.by, seed=args.seed, sample=args.sample)
        rejected = result["rejected"]
    else:
        result = measure_input(args.input, load_recipe(args.recipe).dedup, by=args.by, seed=args.seed, sample=args.sample)
        rejected = None
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print(result, rejected)
    return 0


DESCRIPTION = """\
The text diversity of a run's corpus (runs/NAME/corpus/part-*.parquet; the texts its gate rejected
are measured separately, under "rejected") or of any Parquet or JSONL file with a "text" column.
Every build writes the same block into stats.json and report.md. It streams: memory does not grow
with the documents read (see distinct-n below).

Definitions (exact, so numbers compare across tools and runs):
  words                 the text NFKC-normalised and lower-cased; words = every match of \\w+
                        (Python re, Unicode)
  distinct_1..4         distinct word n-grams / all word n-grams; n-grams do not cross documents;
                        distinct n-grams are counted as 64-bit hashes (exact in practice); past
                        16.8M distinct hashes per n an adaptive sample of the hash space is kept
                        (relative error ~0.02%), and distinct_estimated is true
  opener_top_share      share of documents whose first three words are the most common
                        first-three-word sequence (fewer words: what there is); openers_top10
  compression_ratio     bytes of the texts joined with "\\n" (UTF-8) / bytes of
                        gzip.compress(that, compresslevel=9)
  near_duplicate_rate   --run: the share of gate-accepted texts the run's dedup marked as exact or
                        near duplicates; --input: the recipe's dedup settings run over the file
  pairwise_jaccard      mean Jaccard similarity of the word sets over every pair of a seeded
                        reservoir sample of at most --sample documents
  code                  from the Python snippets the gate's parser finds: function definitions and
                        distinct names (def NAME), identical_snippet_share (equal to an earlier
                        snippet once comments and whitespace are removed), imported top-level modules
"""


def register(sub) -> None:
    p = sub.add_parser("diversity", help="text diversity metrics of a corpus or a file (distinct-n, openers, compression, ...)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="run directory: its corpus, and separately the texts its gate rejected")
    p.add_argument("--input", help="a .parquet or .jsonl file with a text column")
    p.add_argument("--by", metavar="AXIS",
                   help="also measure per value of this entity column: topic, branch (the topic's top branch), audience or a recipe axis")
    p.add_argument("--recipe", default="textbooks", help="--input: the recipe whose dedup settings measure the near-duplicate rate (default: textbooks)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairwise sample (default 0)")
    p.add_argument("--sample", type=int, default=1000, help="documents in the pairwise sample (default 1000)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=cmd_diversity)
