"""``corpus build``, ``corpus finalize``, ``corpus stats`` and ``corpus show``."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from corpus.cli.common import engine_args, parse_tokens, recipe_from_args, workers_arg
from corpus.config import ConfigError


# -- progress -------------------------------------------------------------------------
class Display:
    """The build's progress: one update per chunk (a bar on a terminal, a line in a log)."""

    def __init__(self, command: str, target: int):
        from corpus.progress import Progress

        self.target = target
        self.t0 = time.perf_counter()
        self.bar = Progress(command, total=target, unit="tokens")

    def __call__(self, t, c: int, done: bool) -> None:
        dt = time.perf_counter() - self.t0
        rejected = ", ".join(f"{k} {v:,}" for k, v in t.gate.most_common(4) if k != "accepted")
        need = t.needed_prompts(self.target)
        msg = (
            f"chunk {c}: {t.clean_docs:,} docs kept of {t.prompts:,} prompts ({t.acceptance:.0%}); "
            f"dups {t.dropped('dedup', 'exact') + t.dropped('dedup', 'near'):,}; contaminated {t.dropped('decontam', 'contaminated'):,}; "
            f"rejected: {rejected or 'none'}; {t.prompts / dt:.1f} prompts/s; "
            + ("done" if done else f"~{need:,.0f} more prompts needed" if need != math.inf else "no tokens kept yet")
        )
        self.bar.update(status=msg, completed=t.kept_tokens)

    def close(self) -> None:
        self.bar.close()


# -- commands ---------------------------------------------------------------------------
def _finish(stats: dict) -> None:
    run = Path(stats["run"])
    c = stats["counts"]
    print(
        f"corpus: {c['kept']:,} documents, {stats['tokens']['corpus']:,} tokens ({stats['tokenizer']}) "
        f"from {c['prompts']:,} prompts; {c['exact_dups'] + c['near_dups']:,} duplicates and "
        f"{c['contaminated']:,} contaminated removed"
    )
    print(f"  corpus:  {run / 'corpus'}/part-*.parquet")
    print(f"  card:    {run / 'corpus' / 'README.md'}")
    print(f"  stats:   {run / 'stats.json'} (report: {run / 'report.md'})")


def cmd_build(args) -> int:
    from corpus.recipe import load_recipe
    from corpus.runner import (
        EXIT_LOW_YIELD,
        EXIT_NEED_CHUNKS,
        LowYield,
        NeedChunks,
        build,
        is_noise,
    )

    if args.command == "build":
        recipe = recipe_from_args(args)
    else:  # finalize works on what the run's generation tasks froze
        frozen = Path(args.out) / "recipe.yaml"
        if not frozen.is_file():
            raise ConfigError(f"{frozen}: no such file (finalize needs a run made by corpus generate or corpus build)")
        recipe = load_recipe(str(frozen))
    if is_noise(recipe):
        print("note: the smoke model writes random noise, so the smoke recipe turns off the gate checks noise "
              "cannot pass; this run tests the machinery, not the data", file=sys.stderr)
    display = Display(args.command, args.tokens)
    try:
        stats = build(recipe, args.out, args.tokens, generate=args.command == "build", max_prompts=args.max_prompts,
                      workers=args.workers, progress=display)
    except LowYield as e:
        display.close()
        print(f"corpus: stopped: the token budget is out of reach at this yield\n{e}", file=sys.stderr)
        return EXIT_LOW_YIELD
    except NeedChunks as e:
        display.close()
        t = e.tally
        need = t.needed_prompts(args.tokens)
        more = "an unknown number of" if need == math.inf else f"about {math.ceil(need / recipe.chunk_size):,} more"
        later = sorted(c for c in e.done if c > e.missing)
        print(
            f"corpus: the generated chunks are not enough: chunk {e.missing} is missing"
            + (f" (chunks after it exist: {later[:5]}...; they count once the gap is filled)" if later else "")
            + f"; {t.kept_tokens:,} of {args.tokens:,} tokens so far; generate {more} chunks "
            f"(corpus generate --chunks {e.missing}:...)\n{t.diagnosis(args.tokens)}",
            file=sys.stderr,
        )
        return EXIT_NEED_CHUNKS
    display.close()
    _finish(stats)
    return 0


def cmd_stats(args) -> int:
    path = Path(args.run) / "stats.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no stats yet (run corpus build or corpus finalize first)")
    stats = json.loads(path.read_text())
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print((Path(args.run) / "report.md").read_text())
    return 0


def cmd_show(args) -> int:
    import random

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from corpus.run import RunDir

    run = Path(args.run)
    files = list(RunDir(run).chunks().values())
    if not files:
        raise ConfigError(f"{run}/generated: no chunks")
    if args.id:
        rows = []
        for f in files:
            t = pq.read_table(f)
            rows = [r for r in t.filter(pc.equal(t.column("id"), args.id)).to_pylist()]
            if rows:
                break
    elif args.rejected:
        rows = []
        for f in files:
            t = pq.read_table(f)
            want = {"dup": pc.is_valid(t.column("dup_of")), "contaminated": pc.is_valid(t.column("contaminated_by"))}
            mask = want.get(args.rejected, pc.equal(t.column("gate"), args.rejected))
            rows += t.filter(mask).to_pylist()
            if len(rows) >= args.limit:
                break
        rows = rows[: args.limit]
    else:
        corpus = sorted((run / "corpus").glob("part-*.parquet"))
        t = pa.concat_tables(pq.read_table(f) for f in corpus) if corpus else pq.read_table(files[0])
        k = min(args.random, t.num_rows)
        rows = t.take(sorted(random.Random(args.seed).sample(range(t.num_rows), k))).to_pylist()
    if not rows:
        print("no matching records", file=sys.stderr)
        return 1
    _print_records(rows)
    return 0


def _print_records(rows: list[dict]) -> None:
    label_keys = [k for k in rows[0] if k not in {"id", "index", "text", "prompt", "outline", "gate_detail", "statement", "solution", "tests"}]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown
        from rich.panel import Panel

        con = Console()
        for r in rows:
            labels = "\n".join(f"[bold]{k}[/]: {r[k]}" for k in label_keys if r[k] is not None)
            con.print(Panel(labels + (f"\n[bold]gate_detail[/]: {r['gate_detail']}" if r["gate_detail"] else ""), title=r["id"]))
            con.print(Markdown(r["text"] or "(no text)"))
        return
    for r in rows:
        print(f"=== {r['id']}")
        for k in label_keys:
            if r[k] is not None:
                print(f"{k}: {r[k]}")
        if r["gate_detail"]:
            print(f"gate_detail: {r['gate_detail']}")
        print("---")
        print(r["text"] or "(no text)")
        print()


def register(sub) -> None:
    for name, help_, desc in [
        ("build", "generate until the corpus holds --tokens tokens (the main command)",
         "Generate chunk after chunk, gate, deduplicate and decontaminate each against everything kept so far "
         "(index order), and stop when the kept records hold --tokens tokens (counted with the recipe's tokenizer). "
         "The corpus is the kept records up to and including the first that reaches the budget, in index order: "
         "OUT/corpus/part-*.parquet with a dataset card, OUT/stats.json and OUT/report.md. Interrupted at any "
         "moment, the same command resumes and ends with the same corpus. Exit codes: 0 done, 2 bad input, "
         "3 the budget is out of reach at the measured yield (see --max-prompts)."),
        ("finalize", "gate/dedup/decontam/budget over chunks made by `corpus generate` (distributed mode)",
         "Apply gate, dedup, decontamination and the budget to OUT/generated/chunk-*.parquet in index order, "
         "generating nothing: after a Slurm array of `corpus generate` tasks, this produces the same corpus as "
         "`corpus build` would from the same chunks. If the chunks hold too few tokens it says how many more "
         "are needed and exits with 4."),
    ]:
        p = sub.add_parser(name, help=help_, description=desc)
        p.add_argument("--tokens", type=parse_tokens, required=True, help="token budget: 1e9, 500M, 20k, ...")
        p.add_argument("--out", "--run", dest="out", required=True, help="run directory, e.g. runs/NAME")
        p.add_argument("--max-prompts", type=int, help="stop with a diagnosis when the measured yield needs more "
                       "prompts than this (default: 10x the plan's estimate for the budget, at least 10 chunks)")
        workers_arg(p)
        if name == "build":
            engine_args(p)
        p.set_defaults(func=cmd_build)

    p = sub.add_parser("stats", help="a run's counts, rates and timings", description="Print a run's report (or stats.json with --json).")
    p.add_argument("--run", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("show", help="print records with their entities and verdicts",
                       description="Print records of a run with their entities (labels), verdicts and text: one --id, "
                       "--random K from the corpus, or --rejected REASON (a gate reason, 'dup' or 'contaminated'). "
                       "Rich formatting in a terminal, plain text when piped.")
    p.add_argument("--run", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--id")
    g.add_argument("--random", type=int, default=3, metavar="K")
    g.add_argument("--rejected", metavar="REASON")
    p.add_argument("--limit", type=int, default=5, help="at most this many records with --rejected (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random")
    p.set_defaults(func=cmd_show)
