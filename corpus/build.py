"""``corpus build`` and ``corpus finalize``: the budgeted build loop.

One pass over the run's chunks in index order, generating the missing ones (build) or
stopping at the first missing one (finalize):

    chunk c: read generated/chunk-c (or generate it) -> gate (once; the verdict is stored
    in the chunk file) -> dedup against every earlier accepted record -> decontaminate ->
    count kept tokens -> stream kept records into the corpus -> stop at the record whose
    tokens reach the budget.

Every decision depends only on the chunk files (gate verdicts are stored, dedup and
decontamination are deterministic given the texts, in index order), so a resumed build, a
build interrupted any number of times and a ``finalize`` over chunks made by Slurm array
tasks all end with the same corpus as one uninterrupted build.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.config import ConfigError
from corpus.records import replace_dir, write_parquet_atomic, write_text_atomic

EXIT_LOW_YIELD = 3  # the budget is unreachable within --max-prompts at the measured yield
EXIT_NEED_CHUNKS = 4  # finalize: the generated chunks hold too few tokens
PART_ROWS = 50_000  # documents per corpus part file
ROW_GROUP = 1_000


class LowYield(Exception):
    pass


@dataclass
class Tally:
    """Counts over the chunks processed so far (what stats.json reports)."""

    prompts: int = 0
    chunks: int = 0
    gate: Counter = field(default_factory=Counter)
    exact_dups: int = 0
    near_dups: int = 0
    contaminated: int = 0
    contaminated_ids: dict = field(default_factory=dict)
    kept_docs: int = 0  # in the corpus (up to the budget)
    kept_tokens: int = 0
    clean_docs: int = 0  # passed gate, dedup and decontamination (the yield, budget aside)
    clean_tokens: int = 0
    accepted_tokens: int = 0
    failed_requests: int = 0
    completion_tokens: int = 0
    rejected_samples: dict = field(default_factory=dict)  # reason -> first lines of a few texts
    kept_labels: dict = field(default_factory=dict)  # column (topic, audience, axes) -> Counter of values
    seconds: Counter = field(default_factory=Counter)

    @property
    def acceptance(self) -> float:
        """Share of prompts whose extract survives gate, dedup and decontamination."""
        return self.clean_docs / self.prompts if self.prompts else 0.0

    def needed_prompts(self, target: int) -> float:
        """Prompts still needed at the measured yield (clean tokens per prompt)."""
        if self.kept_tokens >= target:
            return 0.0
        rate = self.clean_tokens / self.prompts if self.prompts else 0.0
        return math.inf if rate == 0 else (target - self.kept_tokens) / rate

    def diagnosis(self, target: int) -> str:
        lines = [
            f"after {self.prompts:,} prompts: {self.clean_docs:,} kept ({self.acceptance:.1%}), "
            f"{self.kept_tokens:,} of {target:,} tokens",
            "top rejection reasons:" if len(self.gate) > ("accepted" in self.gate) else "no rejections by the gate",
        ]
        for reason, n in self.gate.most_common():
            if reason == "accepted":
                continue
            lines.append(f"  {reason}: {n:,} ({n / max(1, self.prompts):.1%})")
            for s in self.rejected_samples.get(reason, []):
                lines.append(f"      | {s}")
        if self.exact_dups or self.near_dups:
            lines.append(f"  duplicates: {self.exact_dups:,} exact, {self.near_dups:,} near")
        if self.contaminated:
            lines.append(f"  contaminated: {self.contaminated:,}")
        return "\n".join(lines)


def planned_prompts(tokens: int) -> int:
    """The plan's default estimate of the prompts a budget needs (see ``corpus plan``)."""
    from corpus.plan import ACCEPTANCE, TOKENS_PER_DOC

    return math.ceil(tokens / TOKENS_PER_DOC / ACCEPTANCE)


class CorpusWriter:
    """Streams kept records into part files in a temporary directory; ``commit`` swaps it in."""

    def __init__(self, run: Path, schema: pa.Schema):
        self.final = run / "corpus"
        for old in run.glob(".corpus*"):  # left by a killed build
            shutil.rmtree(old, ignore_errors=True)
        self.tmp = run / f".corpus-tmp-{os.getpid()}"
        self.tmp.mkdir(parents=True)
        self.schema = schema
        self.parts: list[Path] = []
        self.buffer: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.buffer.append(table)
            self.rows += table.num_rows
            if self.rows >= PART_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer)
        self.buffer, self.rows = [], 0
        for start in range(0, table.num_rows, PART_ROWS):
            path = self.tmp / f"part-{len(self.parts):05d}.parquet"
            pq.write_table(table.slice(start, PART_ROWS), path, row_group_size=ROW_GROUP, compression="zstd")
            self.parts.append(path)

    def commit(self, card: str) -> Path:
        self._flush()
        if not self.parts:  # an empty corpus is still a loadable dataset
            pq.write_table(self.schema.empty_table(), self.tmp / "part-00000.parquet", compression="zstd")
        (self.tmp / "README.md").write_text(card)
        replace_dir(self.tmp, self.final)
        return self.final


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:100]
    return "(empty)"


def build(
    recipe,
    out: str | os.PathLike,
    tokens: int,
    *,
    generate: bool = True,
    max_prompts: int | None = None,
    engine=None,
    progress=None,
) -> dict:
    """Build (or, with ``generate=False``, finalize) the corpus of ``recipe`` in ``out``.

    Returns the stats dict also written to ``out/stats.json``. Raises LowYield when the
    budget is unreachable within ``max_prompts`` at the measured yield, and
    NeedChunks (finalize) when the chunks run out before the budget is met."""
    from corpus.decontam import Decontaminator
    from corpus.dedup import Deduplicator
    from corpus.engines import make_engine
    from corpus.gate import apply_gate, make_sandbox
    from corpus.generate import generate_chunk
    from corpus.plan import Plan
    from corpus.records import record_schema
    from corpus.run import RunDir
    from corpus.tokens import token_counter

    t_start = time.perf_counter()
    run = RunDir(out)
    run.freeze(recipe)
    plan = Plan(recipe)
    schema = record_schema(recipe.axes)
    count = token_counter(recipe.tokenizer)
    n = recipe.chunk_size
    max_prompts = max_prompts or max(10 * planned_prompts(tokens), 10 * n)
    tally = Tally()
    writer = CorpusWriter(run.path, schema)
    dedup = Deduplicator(run.path / "dedup", recipe.dedup)
    decontam = Decontaminator(recipe.decontam)
    report = progress or (lambda tally, c, done: None)
    last_id = None
    sandbox = None
    try:
        c = 0
        while True:
            path = run.chunk_path(c)
            t0 = time.perf_counter()
            if path.exists():
                table = pq.read_table(path, schema=schema)
                tally.seconds["read"] += time.perf_counter() - t0
                fresh = False
            elif not generate:
                raise NeedChunks(tally, c, run.done_chunks())
            else:
                if engine is None:
                    engine = make_engine(recipe.engine)
                run.remove_partial(c)
                table = generate_chunk(plan, engine, c, count)
                tally.seconds["generate"] += time.perf_counter() - t0
                fresh = True
            # Gate once: the verdict is stored in the chunk file and never recomputed (a
            # sandbox timeout under load must not change an already-decided corpus).
            if fresh or table.column("gate").null_count:
                t0 = time.perf_counter()
                runs_code = {"snippet_error", "snippet_timeout"} - set(recipe.gate.skip)
                if sandbox is None and runs_code:  # one warm pool for the whole build
                    sandbox = make_sandbox(recipe.gate, os.cpu_count() or 1)
                table, _ = apply_gate(table, recipe.gate, sandbox)
                write_parquet_atomic(table, path)
                tally.seconds["gate"] += time.perf_counter() - t0
            if table.column("n_tokens").null_count > table.column("text").null_count:
                texts = table.column("text").to_pylist()
                counts = count([t or "" for t in texts])
                table = table.set_column(schema.get_field_index("n_tokens"), "n_tokens", pa.array([k if t is not None else None for k, t in zip(counts, texts)], pa.int64()))
            stored = table
            last_id, table = _account(table, c, tally, dedup, decontam, writer, tokens)
            if any(not stored.column(k).equals(table.column(k)) for k in ("dup_of", "contaminated_by")):
                write_parquet_atomic(table, path)  # record dup_of / contaminated_by in the chunk file too
            report(tally, c, last_id is not None)
            if last_id is not None:
                break
            if tally.prompts + tally.needed_prompts(tokens) > max_prompts:
                raise LowYield(tally.diagnosis(tokens) + f"\nat this yield the budget needs about "
                               f"{tally.prompts + tally.needed_prompts(tokens):,.0f} prompts, over the cap of {max_prompts:,} "
                               "(--max-prompts)")
            c += 1
    except BaseException:
        shutil.rmtree(writer.tmp, ignore_errors=True)
        raise
    finally:
        if sandbox is not None:
            sandbox.close()
        dedup.close()
    tally.seconds["total"] = time.perf_counter() - t_start
    stats = _stats(recipe, plan, run.path, tokens, tally, last_id)
    write_text_atomic(run.path / "stats.json", json.dumps(stats, indent=2) + "\n")
    from corpus.card import dataset_card, report_md

    writer.commit(dataset_card(recipe, stats))
    write_text_atomic(run.path / "report.md", report_md(stats))
    return stats


class NeedChunks(Exception):
    def __init__(self, tally: Tally, missing: int, done: set[int]):
        self.tally, self.missing, self.done = tally, missing, done


def _account(table, c, tally: Tally, dedup, decontam, writer: CorpusWriter, target: int):
    """Fold chunk c into the tally and the corpus; return the id of the record that reaches
    the budget, if this chunk holds it."""
    t0 = time.perf_counter()
    tally.chunks += 1
    tally.prompts += table.num_rows
    gates = table.column("gate").to_pylist()
    tally.gate.update(gates)
    texts = table.column("text").to_pylist()
    for g, t, err in zip(gates, texts, table.column("error").to_pylist()):
        if g != "accepted" and len(tally.rejected_samples.setdefault(g, [])) < 3:
            tally.rejected_samples[g].append(_first_line(t) if t is not None else f"(request failed: {(err or '')[:160]})")
    tally.failed_requests += sum(r == "error" for r in table.column("finish_reason").to_pylist())
    tally.completion_tokens += sum(k or 0 for k in table.column("completion_tokens").to_pylist())
    accepted = [i for i, g in enumerate(gates) if g == "accepted"]
    ids = table.column("id").to_pylist()
    dup_of: list = [None] * table.num_rows
    for dec in dedup.add(c, [ids[i] for i in accepted], [texts[i] for i in accepted]):
        for i, d, why in zip(accepted, dec.dup_of, dec.reason):
            dup_of[i] = d
            tally.exact_dups += why == "exact"
            tally.near_dups += why == "near"
    contaminated: list = [None] * table.num_rows
    unique = [i for i in accepted if dup_of[i] is None]
    for i, hit in zip(unique, (decontam.check(texts[i]) for i in unique)):
        if hit:
            contaminated[i] = hit
            tally.contaminated += 1
            tally.contaminated_ids[ids[i]] = hit
    table = table.set_column(table.schema.get_field_index("dup_of"), "dup_of", pa.array(dup_of, pa.string()))
    table = table.set_column(table.schema.get_field_index("contaminated_by"), "contaminated_by", pa.array(contaminated, pa.list_(pa.string())))
    n_tokens = table.column("n_tokens").to_pylist()
    tally.accepted_tokens += sum(n_tokens[i] or 0 for i in accepted)
    keep, reached = [], None
    for i in unique:
        if contaminated[i] is None:
            tally.clean_docs += 1
            tally.clean_tokens += n_tokens[i] or 0
            if reached is None:
                keep.append(i)
                tally.kept_docs += 1
                tally.kept_tokens += n_tokens[i] or 0
                if tally.kept_tokens >= target:
                    reached = ids[i]
    kept = table.take(pa.array(keep, pa.int64()))
    for col in ["topic", "audience", *table.column_names[table.schema.get_field_index("audience") + 1 : table.schema.get_field_index("prompt")]]:
        tally.kept_labels.setdefault(col, Counter()).update(kept.column(col).to_pylist())
    writer.add(kept)
    tally.seconds["dedup+decontam"] += time.perf_counter() - t0
    return reached, table


def is_noise(recipe) -> bool:
    """Made with the smoke model or recipe: text that tests the machinery, not training data."""
    return recipe.name == "smoke" or "smoke" in (recipe.engine.model or "")


def _stats(recipe, plan, run: Path, tokens: int, tally: Tally, last_id) -> dict:
    labels = tally.kept_labels
    topics = labels.get("topic", Counter())
    return {
        "run": str(run),
        "recipe": recipe.name,
        "recipe_hash": recipe.hash,
        "seed": recipe.seed,
        "model": recipe.engine.model,
        "engine": recipe.engine.name,
        "noise": is_noise(recipe),
        "sampling": {"temperature": recipe.sampling.temperature, "top_p": recipe.sampling.top_p, "max_tokens": recipe.sampling.max_tokens},
        "tokenizer": f"{recipe.tokenizer.kind}:{recipe.tokenizer.name}",
        "target_tokens": tokens,
        "complete": last_id is not None,
        "last_id": last_id,
        "counts": {
            "chunks": tally.chunks,
            "prompts": tally.prompts,
            "failed_requests": tally.failed_requests,
            "accepted_by_gate": tally.gate.get("accepted", 0),
            "rejected_by_gate": tally.prompts - tally.gate.get("accepted", 0),
            "exact_dups": tally.exact_dups,
            "near_dups": tally.near_dups,
            "contaminated": tally.contaminated,
            "clean": tally.clean_docs,
            "kept": tally.kept_docs,
        },
        "rejections": {k: v for k, v in tally.gate.most_common() if k != "accepted"},
        "rejected_samples": tally.rejected_samples,
        "contaminated_ids": tally.contaminated_ids,
        "tokens": {
            "corpus": tally.kept_tokens,
            "accepted_by_gate": tally.accepted_tokens,
            "generated_completion_tokens": tally.completion_tokens,
            "per_kept_doc": tally.kept_tokens / tally.kept_docs if tally.kept_docs else 0,
        },
        "rates": {
            "acceptance": tally.acceptance,
            "gate_acceptance": tally.gate.get("accepted", 0) / tally.prompts if tally.prompts else 0,
            "clean_tokens_per_prompt": tally.clean_tokens / tally.prompts if tally.prompts else 0,
            "prompts_per_s": tally.prompts / tally.seconds["total"] if tally.seconds["total"] else 0,
        },
        "timings_s": dict(tally.seconds),
        "diversity": {
            "leaves_total": plan.L,
            "leaves_covered": len(topics),
            "min_docs_per_covered_leaf": min(topics.values()) if topics else 0,
            "max_docs_per_leaf": max(topics.values()) if topics else 0,
            "audiences": dict(labels.get("audience", Counter()).most_common()),
            "axes": {a: dict(labels.get(a, Counter()).most_common()) for a in recipe.axes},
        },
    }


# -- progress -------------------------------------------------------------------------
class Display:
    """One live line for the loop: a rich bar in a terminal, a log line per chunk otherwise
    (Slurm logs)."""

    def __init__(self, target: int):
        self.target = target
        self.t0 = time.perf_counter()
        self.live = sys.stderr.isatty()
        self.bar = None
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("tokens"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"))
            self.task = self.bar.add_task("", total=target)
            self.bar.start()

    def __call__(self, t: Tally, c: int, done: bool) -> None:
        dt = time.perf_counter() - self.t0
        rejected = ", ".join(f"{k} {v:,}" for k, v in t.gate.most_common(4) if k != "accepted")
        need = t.needed_prompts(self.target)
        msg = (
            f"chunk {c}: {t.clean_docs:,} docs kept of {t.prompts:,} prompts ({t.acceptance:.0%}); "
            f"dups {t.exact_dups + t.near_dups:,}; contaminated {t.contaminated:,}; "
            f"rejected: {rejected or 'none'}; {t.prompts / dt:.1f} prompts/s; "
            + ("done" if done else f"~{need:,.0f} more prompts needed" if need != math.inf else "no tokens kept yet")
        )
        if self.bar is not None:
            self.bar.update(self.task, completed=min(t.kept_tokens, self.target), description=msg)
        else:
            print(f"[build] {t.kept_tokens:,}/{self.target:,} tokens; {msg}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


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
    from corpus.cli import recipe_from_args
    from corpus.recipe import load_recipe

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
    display = Display(args.tokens)
    try:
        stats = build(recipe, args.out, args.tokens, generate=args.command == "build", max_prompts=args.max_prompts, progress=display)
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

    run = Path(args.run)
    files = sorted((run / "generated").glob("chunk-*.parquet"))
    if not files:
        raise ConfigError(f"{run}/generated: no chunks")
    if args.id:
        rows = []
        for f in files:
            t = pq.read_table(f)
            rows = [r for r in t.filter(pa.compute.equal(t.column("id"), args.id)).to_pylist()]
            if rows:
                break
    elif args.rejected:
        rows = []
        for f in files:
            t = pq.read_table(f)
            want = {"dup": pa.compute.is_valid(t.column("dup_of")), "contaminated": pa.compute.is_valid(t.column("contaminated_by"))}
            mask = want.get(args.rejected, pa.compute.equal(t.column("gate"), args.rejected))
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
    label_keys = [k for k in rows[0] if k not in {"id", "index", "text", "prompt", "outline", "gate_detail"}]
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
    from corpus.cli import engine_args, parse_tokens

    for name, help_, desc in [
        ("build", "generate until the corpus holds --tokens tokens (the main command)",
         "Generate chunk after chunk, gate, deduplicate and decontaminate each against everything kept so far "
         "(index order), and stop when the kept records hold --tokens tokens (counted with the recipe's tokenizer). "
         "The corpus is the kept records up to and including the first that reaches the budget, in index order: "
         "OUT/corpus/part-*.parquet with a dataset card, OUT/stats.json and OUT/report.md. Interrupted at any "
         "moment, the same command resumes and ends with the same corpus. Exit codes: 0 done, 2 bad input, "
         f"{EXIT_LOW_YIELD} the budget is out of reach at the measured yield (see --max-prompts)."),
        ("finalize", "gate/dedup/decontam/budget over chunks made by `corpus generate` (distributed mode)",
         "Apply gate, dedup, decontamination and the budget to OUT/generated/chunk-*.parquet in index order, "
         "generating nothing: after a Slurm array of `corpus generate` tasks, this produces the same corpus as "
         "`corpus build` would from the same chunks. If the chunks hold too few tokens it says how many more "
         f"are needed and exits with {EXIT_NEED_CHUNKS}."),
    ]:
        p = sub.add_parser(name, help=help_, description=desc)
        p.add_argument("--tokens", type=parse_tokens, required=True, help="token budget: 1e9, 500M, 20k, ...")
        p.add_argument("--out", "--run", dest="out", required=True, help="run directory, e.g. runs/NAME")
        p.add_argument("--max-prompts", type=int, help="stop with a diagnosis when the measured yield needs more "
                       "prompts than this (default: 10x the plan's estimate for the budget, at least 10 chunks)")
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
