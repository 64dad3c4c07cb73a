"""``corpus gate``, ``corpus dedup`` and ``corpus decontam``: one stage over a run's chunks
(``--run``, in place) or over any Parquet/JSONL file (``--input``/``--output``), through the runner."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from corpus.cli.common import workers_arg
from corpus.config import ConfigError

RUN_ROWS_HELP = (
    "With --run, the documents are the rows of runs/NAME/generated/chunk-*.parquet that have "
    "text and whose gate is 'accepted' (or null: the gate has not run on them yet); rows the "
    "gate rejected are left as they are. Chunk files are rewritten atomically, only when a verdict changed."
)


def _io_args(args, name: str) -> None:
    if (args.run is None) == (args.input is None) or (args.input is None) != (args.output is None):
        raise ConfigError(f"{name}: give either --run runs/NAME, or --input FILE and --output FILE")


# -- gate -------------------------------------------------------------------------------------
def cmd_gate(args) -> int:
    from collections import Counter

    from corpus.checks import ACCEPTED, CHECKS, format_counts
    from corpus.gate import Gate
    from corpus.recipe import load_recipe
    from corpus.run import RunDir
    from corpus.runner import apply_to_file, apply_to_run

    _io_args(args, "gate")
    if args.run:
        stage = apply_to_run(RunDir(args.run), ("gate",), workers=args.workers)[0]["gate"]
    else:
        stage = Gate(load_recipe(args.recipe).gate, workers=args.workers)
        apply_to_file(args.input, args.output, [stage], required=("text",))
    total = Counter({ACCEPTED: stage.stats.kept, **stage.stats.dropped})
    if args.json:
        print(json.dumps({name: total[name] for name in (ACCEPTED, *CHECKS) if total[name]}))
    else:
        print(format_counts(total))
    return 0


# -- dedup ------------------------------------------------------------------------------------
def cmd_dedup(args) -> int:
    from corpus.dedup import Dedup, load_kernels
    from corpus.io import write_json
    from corpus.run import RunDir
    from corpus.runner import apply_to_file, apply_to_run
    from corpus.settings import DedupConfig

    _io_args(args, "dedup")
    load_kernels()  # start-up, like the imports: numba's first call (~0.25 s), before the clock starts
    t0 = time.perf_counter()  # seconds: from reading the input to writing the output
    if args.input:
        with tempfile.TemporaryDirectory() as state:
            stage = Dedup(DedupConfig(), state, workers=args.workers, ephemeral=True)
            apply_to_file(args.input, args.output, [stage], batch_rows=args.chunk_rows)
            stats = stage.report()
    else:
        run = RunDir(args.run)
        stages, done = apply_to_run(run, ("dedup",), workers=args.workers, in_order=True)
        stats = stages["dedup"].report()
        stats["parked_chunks"], stats["waiting_for_chunks"] = done["waiting"], done["missing"]
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        write_json(run.path / "dedup" / "stats.json", stats)
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"dedup: {stats['docs_in']:,} documents in, {stats['exact_dups']:,} exact duplicates, "
              f"{stats['near_dups']:,} near duplicates, {stats['kept']:,} kept; "
              f"{stats['seconds']:.1f} s, peak RSS {stats['peak_rss_mb']:.0f} MB, index {stats['index_bytes'] / 1e6:.1f} MB")
        if stats.get("parked_chunks"):
            print(f"dedup: chunks {stats['parked_chunks']} wait for missing chunks "
                  f"{stats['waiting_for_chunks']} (rerun once they exist)")
    return 0


# -- decontam ---------------------------------------------------------------------------------
def cmd_decontam(args) -> int:
    from corpus.decontam import Decontam
    from corpus.dedup import peak_rss_mb
    from corpus.io import write_json
    from corpus.run import RunDir
    from corpus.runner import apply_to_file, apply_to_run
    from corpus.settings import DecontamConfig

    _io_args(args, "decontam")
    t0 = time.perf_counter()
    if args.input:
        stage = Decontam(DecontamConfig(), workers=args.workers)
        apply_to_file(args.input, args.output, [stage])
    else:
        stage = apply_to_run(RunDir(args.run), ("decontam",), workers=args.workers)[0]["decontam"]
    stats = {"docs_in": stage.stats.seen, "contaminated": len(stage.flagged), "chunks_skipped": stage.skipped,
             "seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
             "benchmarks": stage.cfg.benchmarks, "flagged": stage.flagged}
    if args.run:
        write_json(Path(args.run) / "decontam" / "stats.json", stats)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"decontam: {stats['docs_in']:,} documents in, {stats['contaminated']:,} contaminated "
              f"({', '.join(stage.cfg.benchmarks)}); {stats['seconds']:.1f} s, peak RSS {stats['peak_rss_mb']:.0f} MB")
        for doc_id, tasks in sorted(stage.flagged.items()):
            print(f"  {doc_id}: {', '.join(tasks)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "gate",
        help="check extracts (parse, checks, run their snippets in the sandbox) and count rejections",
        description="Apply the quality gate: split each extract into prose and code, run the checks in order "
        "(corpus.checks.REGISTRY; the README lists them), run the Python snippets in the sandbox, and set gate "
        "(accepted or the first failing check), gate_detail, n_snippets and snippets_ok. A verdict once written "
        "is final: --run gates the rows of a run's generated chunks not gated yet, in place (atomically; "
        "rerunning gives the same result); --input/--output gates any Parquet or JSONL file with a 'text' "
        "column (optional 'finish_reason'). Prints the count per reason.",
    )
    p.add_argument("--run", metavar="RUN_DIR", help="run directory: gate generated/chunk-*.parquet in place with the run's recipe")
    p.add_argument("--input", metavar="FILE", help="a .parquet or .jsonl file with a 'text' column")
    p.add_argument("--output", metavar="FILE", help="where to write the gated rows (.parquet or .jsonl)")
    p.add_argument("--recipe", default="textbooks", help="with --input: recipe whose gate settings apply (built-in name or path; default textbooks)")
    workers_arg(p, "sandbox worker processes")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser(
        "dedup",
        help="drop exact and near-duplicate documents (MinHash LSH); fills dup_of",
        description="Exact duplicates (normalised text) then near duplicates (datasketch MinHash, LSH with the "
        "recipe's bands x rows, verified by the exact Jaccard similarity). The first document in index order wins; "
        "every later copy gets dup_of = the kept document's id (null when kept). " + RUN_ROWS_HELP + " "
        "Signatures and verdicts are saved per chunk in runs/NAME/dedup/, so rerunning continues where it "
        "stopped and gives the same answer as one pass; chunks are decided in order, up to the first missing one. "
        "Settings: the recipe's dedup section (for --input: the defaults).",
    )
    p.add_argument("--run", help="run directory runs/NAME")
    p.add_argument("--input", help="a Parquet or JSONL file with id and text columns")
    p.add_argument("--output", help="where to write --input's rows with dup_of filled (.parquet or .jsonl)")
    workers_arg(p, "processes computing signatures")
    p.add_argument("--chunk-rows", type=int, default=8192, help="--input rows signed per batch (default 8192)")
    p.add_argument("--json", action="store_true", help="print the stats as JSON")
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser(
        "decontam",
        help="flag documents that contain benchmark problems (HumanEval); fills contaminated_by",
        description="Index the benchmark's prompts, docstring prose and canonical solutions; find candidate documents "
        "by shared token n-grams (as written or identifier-blind) and confirm by the share of a task's prompt, prose "
        "or solution the document covers, read as written and with the task's identifiers as placeholders, so copies "
        "with renamed functions and variables, other layout, comments or quotes are caught. Flagged documents get contaminated_by = the task ids (null when clean) and leave the corpus; "
        "near duplicates (dup_of set) are not checked. " + RUN_ROWS_HELP + " A chunk already checked with the "
        "same settings is skipped, so rerunning continues where it stopped. Settings: the recipe's decontam "
        "section (for --input: the defaults).",
    )
    p.add_argument("--run", help="run directory runs/NAME")
    p.add_argument("--input", help="a Parquet or JSONL file with id and text columns")
    p.add_argument("--output", help="where to write --input's rows with contaminated_by filled (.parquet or .jsonl)")
    workers_arg(p, "processes")
    p.add_argument("--json", action="store_true", help="print the stats as JSON")
    p.set_defaults(func=cmd_decontam)
