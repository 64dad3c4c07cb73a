"""The runner: the one chunk loop. ``build``, ``finalize`` and the ``--run`` and ``--input`` forms of
gate, dedup and decontam are configurations of it.

One pass over the run's chunks in index order::

    chunk c: read generated/chunk-c (build: generate it when missing; finalize: stop there)
             -> count tokens -> gate -> dedup against every earlier kept record -> decontaminate
             -> write the chunk file once (only if a stage changed it)
             -> budget: stream kept records into the corpus, stop at the record whose tokens reach it.

Every verdict is written once and never recomputed (``corpus.stage``), and the rest is
deterministic given the chunk files in index order, so a resumed build, a build killed any number
of times and a ``finalize`` over chunks made by Slurm array tasks all end with the same corpus as
one uninterrupted build. Stage counts are derived from the verdict columns, so they cover every
chunk whoever decided it (an earlier process, another array task).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.card import dataset_card, report_md, report_plots
from corpus.checks import ACCEPTED
from corpus.config import ConfigError
from corpus.decontam import Decontam
from corpus.diversity import Diversity, branch
from corpus.dedup import Dedup
from corpus.engines import Engine, make_engine
from corpus.gate import Gate
from corpus.generate import GENERATE_SECONDS, generate_chunk
from corpus.io import (
    remove_stale,
    replace_dir,
    tmp_name,
    write_json,
    write_parquet,
    write_text,
)
from corpus.plan import ACCEPTANCE, TOKENS_PER_DOC, Plan
from corpus.progress import Progress
from corpus.recipe import Recipe
from corpus.records import read_rows, record_schema, write_rows
from corpus.run import RunDir
from corpus.smoke import is_smoke_model
from corpus.stage import Stage
from corpus.teacher import provenance
from corpus.tokens import Count

EXIT_LOW_YIELD = 3  # the budget is unreachable within --max-prompts at the measured yield
EXIT_NEED_CHUNKS = 4  # finalize: the generated chunks hold too few tokens
PART_ROWS = 50_000  # documents per corpus part file
ROW_GROUP = 1_000


class LowYield(Exception):
    pass


class NeedChunks(Exception):
    def __init__(self, tally: Tally, missing: int, done: set[int]):
        self.tally, self.missing, self.done = tally, missing, done


def is_noise(recipe: Recipe) -> bool:
    """Made with the smoke model or recipe: text that tests the machinery, not training data."""
    return recipe.name == "smoke" or is_smoke_model(recipe.engine.model)


# -- stages over chunks ----------------------------------------------------------------------
def record_stages(recipe: Recipe, run: RunDir, names: tuple[str, ...], *, workers: int | None, from_chunk: int | None) -> list[Stage]:
    """The record-level stages ``names`` (in pipeline order) with the recipe's settings."""
    make = {
        "count": lambda: Count(recipe.tokenizer),
        "gate": lambda: Gate(recipe.gate, workers=workers),
        "dedup": lambda: Dedup(recipe.dedup, run.path / "dedup", workers=workers, from_chunk=from_chunk),
        "decontam": lambda: Decontam(recipe.decontam, workers=workers),
    }
    return [make[n]() for n in ("count", "gate", "dedup", "decontam") if n in names]


def _apply(stages: list[Stage], table: pa.Table) -> pa.Table:
    for st in stages:
        table = st(table)
    return table


def _first_missing(done: set[int]) -> int:
    c = 0
    while c in done:
        c += 1
    return c


def apply_to_run(run: RunDir, names: tuple[str, ...], *, workers: int | None = None, in_order: bool = False) -> tuple[dict[str, Stage], dict]:
    """Run the stages ``names`` over a run's chunk files, in place (``gate --run``, ...). With
    ``in_order`` (dedup) only the chunks before the first missing one are processed. Returns the
    stages (their stats) and {"chunks": processed, "waiting": chunks left for a gap to fill, "missing": gap}."""
    recipe = run.recipe()
    chunks = run.chunks()
    if not chunks:
        raise ConfigError(f"{run.generated}: no chunk-*.parquet files yet")
    gap = _first_missing(set(chunks))
    todo = [c for c in chunks if c < gap] if in_order else list(chunks)
    stages = record_stages(recipe, run, names, workers=workers, from_chunk=gap)
    try:
        with Progress("/".join(names), total=len(todo), unit="chunks") as bar:
            for c in todo:
                before = pq.read_table(chunks[c])
                table = _apply(stages, before)
                if not table.equals(before, check_metadata=True):
                    write_parquet(table, chunks[c])
                bar.update(1, f"chunk {c}")
    finally:
        for st in stages:
            st.close()
    waiting = sorted(c for c in chunks if c not in todo)
    missing = sorted(set(range(max(chunks) + 1)) - set(chunks)) if waiting else []
    return {st.name: st for st in stages}, {"chunks": len(todo), "waiting": waiting, "missing": missing}


def apply_to_file(src: str | os.PathLike, dst: str | os.PathLike, stages: list[Stage], *, batch_rows: int = 8192,
                  required: tuple[str, ...] = ("id", "text")) -> None:
    """Run ``stages`` over a Parquet/JSONL file of records (``--input``/``--output``), batch by batch."""
    table = read_rows(src, required=required)
    out = []
    try:
        starts = range(0, max(1, table.num_rows), batch_rows)
        with Progress("/".join(st.name for st in stages), total=len(starts), unit="batches") as bar:
            for a in starts:
                out.append(_apply(stages, table.slice(a, batch_rows)))
                bar.update(1, f"rows {a:,}-{min(a + batch_rows, table.num_rows):,}")
    finally:
        for st in stages:
            st.close()
    write_rows(pa.concat_tables(out), dst)


# -- the budget ------------------------------------------------------------------------------
@dataclass
class Tally:
    """The budget's counts over the chunks processed so far (with the stages' stats, what
    stats.json reports)."""

    stages: dict[str, Stage] = field(default_factory=dict)
    prompts: int = 0
    chunks: int = 0
    kept_docs: int = 0  # in the corpus (up to the budget)
    kept_tokens: int = 0
    clean_docs: int = 0  # passed gate, dedup and decontamination (the yield, budget aside)
    clean_tokens: int = 0
    accepted_tokens: int = 0
    failed_requests: int = 0
    completion_tokens: int = 0
    rejected_samples: dict = field(default_factory=dict)  # reason -> first lines of a few texts
    kept_labels: dict = field(default_factory=dict)  # column (topic, branch, audience, axes) -> Counter of values
    clean_labels: dict = field(default_factory=dict)  # the same over every clean record (budget aside)
    prompt_labels: dict = field(default_factory=dict)  # the same over every prompt
    kept_text: Diversity = field(default_factory=Diversity)  # the corpus's text metrics
    rejected_text: Diversity = field(default_factory=Diversity)  # those of the texts the gate rejected
    seconds: Counter = field(default_factory=Counter)

    @property
    def gate(self) -> Counter:
        s = self.stages["gate"].stats
        return Counter({ACCEPTED: s.kept, **s.dropped})

    def dropped(self, stage: str, reason: str) -> int:
        return self.stages[stage].stats.dropped.get(reason, 0)

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
        gate = self.gate
        lines = [
            f"after {self.prompts:,} prompts: {self.clean_docs:,} kept ({self.acceptance:.1%}), "
            f"{self.kept_tokens:,} of {target:,} tokens",
            "top rejection reasons:" if len(gate) > (ACCEPTED in gate) else "no rejections by the gate",
        ]
        for reason, n in gate.most_common():
            if reason == ACCEPTED or not n:
                continue
            lines.append(f"  {reason}: {n:,} ({n / max(1, self.prompts):.1%})")
            for s in self.rejected_samples.get(reason, []):
                lines.append(f"      | {s}")
        exact, near = self.dropped("dedup", "exact"), self.dropped("dedup", "near")
        if exact or near:
            lines.append(f"  duplicates: {exact:,} exact, {near:,} near")
        if self.dropped("decontam", "contaminated"):
            lines.append(f"  contaminated: {self.dropped('decontam', 'contaminated'):,}")
        return "\n".join(lines)

    def account(self, table: pa.Table, target: int, labels: list[str]) -> tuple[pa.Table, str | None]:
        """Fold a decided chunk into the counts; return the rows it adds to the corpus and the id
        of the record that reaches the budget, if this chunk holds it."""
        self.chunks += 1
        self.prompts += table.num_rows
        d = table.select(["id", "text", "n_tokens", "gate", "dup_of", "contaminated_by", "finish_reason",
                          "completion_tokens", "error"]).to_pydict()
        for g, t, err in zip(d["gate"], d["text"], d["error"]):
            if g != ACCEPTED and len(self.rejected_samples.setdefault(g, [])) < 3:
                self.rejected_samples[g].append(_first_line(t) if t is not None else f"(request failed: {(err or '')[:160]})")
        self.failed_requests += d["finish_reason"].count("error")
        self.completion_tokens += sum(k or 0 for k in d["completion_tokens"])
        keep, clean, reached = [], [], None
        for i, (g, dup, hit, k) in enumerate(zip(d["gate"], d["dup_of"], d["contaminated_by"], d["n_tokens"])):
            if g != ACCEPTED:
                continue
            self.accepted_tokens += k or 0
            if dup is not None or hit is not None:
                continue
            clean.append(i)
            self.clean_docs += 1
            self.clean_tokens += k or 0
            if reached is None:
                keep.append(i)
                self.kept_docs += 1
                self.kept_tokens += k or 0
                if self.kept_tokens >= target:
                    reached = d["id"][i]
        t0 = time.perf_counter()
        for i in keep:
            self.kept_text.add(d["text"][i])
        for g, t in zip(d["gate"], d["text"]):
            if g != ACCEPTED and t is not None:
                self.rejected_text.add(t)
        self.seconds["diversity"] += time.perf_counter() - t0
        kept = table.take(pa.array(keep, pa.int64()))
        for counts, rows in ((self.prompt_labels, table), (self.clean_labels, table.take(pa.array(clean, pa.int64()))), (self.kept_labels, kept)):
            for col in labels:
                values = rows.column(col).to_pylist()
                counts.setdefault(col, Counter()).update(values)
                if col == "topic":
                    counts.setdefault("branch", Counter()).update(map(branch, values))
        return kept, reached


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:100]
    return "(empty)"


def planned_prompts(tokens: int) -> int:
    """The plan's default estimate of the prompts a budget needs (see ``corpus plan``)."""
    return math.ceil(tokens / TOKENS_PER_DOC / ACCEPTANCE)


class CorpusWriter:
    """Streams kept records into part files in a temporary directory; ``commit`` swaps it in."""

    def __init__(self, run: Path, schema: pa.Schema):
        self.final = run / "corpus"
        remove_stale(run, "corpus")  # left by a killed build
        self.tmp = tmp_name(self.final)
        self.tmp.mkdir()
        self.schema = schema
        self.parts = 0
        self.buffer: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.buffer.append(table.replace_schema_metadata(None))
            self.rows += table.num_rows
            if self.rows >= PART_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer)
        self.buffer, self.rows = [], 0
        for start in range(0, table.num_rows, PART_ROWS):
            pq.write_table(table.slice(start, PART_ROWS), self.tmp / f"part-{self.parts:05d}.parquet", row_group_size=ROW_GROUP, compression="zstd")
            self.parts += 1

    def commit(self, card: str) -> Path:
        self._flush()
        if not self.parts:  # an empty corpus is still a loadable dataset
            pq.write_table(self.schema.empty_table(), self.tmp / "part-00000.parquet", compression="zstd")
        (self.tmp / "README.md").write_text(card)
        replace_dir(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- build and finalize -------------------------------------------------------------------------
def build(
    recipe: Recipe,
    out: str | os.PathLike,
    tokens: int,
    *,
    generate: bool = True,
    max_prompts: int | None = None,
    engine: Engine | None = None,
    workers: int | None = None,
    progress: Callable[[Tally, int, bool], None] | None = None,
) -> dict:
    """Build (or, with ``generate=False``, finalize) the corpus of ``recipe`` in ``out``.

    Returns the stats dict also written to ``out/stats.json``. Raises LowYield when the
    budget is unreachable within ``max_prompts`` at the measured yield, and NeedChunks
    (finalize) when the chunks run out before the budget is met. ``workers``: processes for the
    sandbox, dedup signatures and decontamination (default: all cores)."""
    t_start = time.perf_counter()
    run = RunDir(out)
    run.freeze(recipe)
    plan = Plan(recipe)
    schema = record_schema(recipe.entity_axes)
    labels = ["topic"] * bool(recipe.topics.leaves) + ["audience"] * bool(len(recipe.audiences)) + [*recipe.entity_axes]
    max_prompts = max_prompts or max(10 * planned_prompts(tokens), 10 * recipe.chunk_size)
    done = run.done_chunks()
    stages = record_stages(recipe, run, ("count", "gate", "dedup", "decontam"), workers=workers, from_chunk=_first_missing(done))
    tally = Tally(stages={st.name: st for st in stages})
    writer = CorpusWriter(run.path, schema)
    report = progress or (lambda tally, c, done: None)
    last_id = None
    try:
        c = 0
        while True:
            path = run.chunk_path(c)
            t0 = time.perf_counter()
            if path.exists():
                before = pq.read_table(path)
                tally.seconds["read"] += time.perf_counter() - t0
            elif not generate:
                raise NeedChunks(tally, c, run.done_chunks())
            else:
                if engine is None:
                    engine = make_engine(recipe.engine)
                run.remove_partial(c)
                before = None
            table = before if before is not None else generate_chunk(plan, engine, c)
            tally.seconds["generate"] += float((table.schema.metadata or {}).get(GENERATE_SECONDS, b"0"))
            table = _apply(stages, table)
            if before is None or not table.equals(before, check_metadata=True):
                t0 = time.perf_counter()
                write_parquet(table, path)  # once per pass: generation and every verdict together
                tally.seconds["write"] += time.perf_counter() - t0
            kept, last_id = tally.account(table, tokens, labels)
            writer.add(kept)
            report(tally, c, last_id is not None)
            if last_id is not None:
                break
            if tally.prompts + tally.needed_prompts(tokens) > max_prompts:
                raise LowYield(tally.diagnosis(tokens) + f"\nat this yield the budget needs about "
                               f"{tally.prompts + tally.needed_prompts(tokens):,.0f} prompts, over the cap of {max_prompts:,} "
                               "(--max-prompts)")
            c += 1
    except BaseException:
        writer.abort()
        raise
    finally:
        for st in stages:
            st.close()
    for st in stages:
        tally.seconds[st.name] += st.stats.seconds
    tally.seconds["total"] = time.perf_counter() - t_start
    stats = _stats(recipe, plan, run.path, tokens, tally, last_id)
    write_json(run.path / "stats.json", stats)
    writer.commit(dataset_card(recipe, stats))
    report_plots(stats, run.path)
    write_text(run.path / "report.md", report_md(stats))
    return stats


def _stats(recipe: Recipe, plan: Plan, run: Path, tokens: int, tally: Tally, last_id) -> dict:
    labels = tally.kept_labels
    leads = labels.get(plan.primary, Counter())  # the plan's primary entity: topic leaves, else the first word list or axis
    gate = tally.gate
    exact, near = tally.dropped("dedup", "exact"), tally.dropped("dedup", "near")
    contaminated = tally.stages["decontam"]
    return {
        "run": str(run),
        "recipe": recipe.name,
        "recipe_hash": recipe.hash,
        "seed": recipe.seed,
        "model": recipe.engine.model,
        "model_provenance": provenance(recipe.engine.model) if recipe.engine.name == "vllm" else None,
        "engine": recipe.engine.name,
        "noise": is_noise(recipe),
        "sampling": {"temperature": recipe.sampling.temperature, "top_p": recipe.sampling.top_p, "max_tokens": recipe.sampling.max_tokens,
                     "repetition_penalty": recipe.sampling.repetition_penalty},
        "tokenizer": f"{recipe.tokenizer.kind}:{recipe.tokenizer.name}",
        "target_tokens": tokens,
        "complete": last_id is not None,
        "last_id": last_id,
        "counts": {
            "chunks": tally.chunks,
            "prompts": tally.prompts,
            "failed_requests": tally.failed_requests,
            "accepted_by_gate": gate.get(ACCEPTED, 0),
            "rejected_by_gate": tally.prompts - gate.get(ACCEPTED, 0),
            "exact_dups": exact,
            "near_dups": near,
            "contaminated": contaminated.stats.dropped.get("contaminated", 0),
            "clean": tally.clean_docs,
            "kept": tally.kept_docs,
        },
        "rejections": {k: v for k, v in gate.most_common() if k != ACCEPTED and v},
        "rejected_samples": tally.rejected_samples,
        "contaminated_ids": contaminated.flagged,
        "stages": {name: st.stats.to_dict() for name, st in tally.stages.items()},
        "tokens": {
            "corpus": tally.kept_tokens,
            "accepted_by_gate": tally.accepted_tokens,
            "generated_completion_tokens": tally.completion_tokens,
            "per_kept_doc": tally.kept_tokens / tally.kept_docs if tally.kept_docs else 0,
        },
        "rates": {
            "acceptance": tally.acceptance,
            "gate_acceptance": gate.get(ACCEPTED, 0) / tally.prompts if tally.prompts else 0,
            "clean_tokens_per_prompt": tally.clean_tokens / tally.prompts if tally.prompts else 0,
            "prompts_per_s": tally.prompts / tally.seconds["total"] if tally.seconds["total"] else 0,
        },
        "timings_s": {k: round(v, 3) for k, v in tally.seconds.items()},
        "diversity": {
            "primary": plan.primary,
            "leaves_total": plan.L,
            "leaves_covered": len(leads),
            "min_docs_per_covered_leaf": min(leads.values()) if leads else 0,
            "max_docs_per_leaf": max(leads.values()) if leads else 0,
            "audiences": dict(labels.get("audience", Counter()).most_common()),
            "axes": {a: dict(labels.get(a, Counter()).most_common()) for a in recipe.entity_axes},
            "per_value": {col: _per_value(tally, col) for col in ("branch", "audience", *recipe.entity_axes)},
        },
        "text_diversity": {
            "corpus": tally.kept_text.result((exact + near) / gate[ACCEPTED] if gate.get(ACCEPTED) else None),
            "rejected": tally.rejected_text.result(),
        },
    }


def _per_value(tally: Tally, col: str) -> dict:
    """{value: prompts, clean (passed every stage), kept (in the corpus), acceptance (clean / prompts)}."""
    prompts, clean, kept = (c.get(col, Counter()) for c in (tally.prompt_labels, tally.clean_labels, tally.kept_labels))
    return {v: {"prompts": n, "clean": clean[v], "kept": kept[v], "acceptance": clean[v] / n} for v, n in sorted(prompts.items(), key=lambda kv: str(kv[0]))}
