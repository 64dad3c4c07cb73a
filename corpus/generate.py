"""Chunked, resumable generation: ``corpus generate``.

A chunk is the fixed prompt range [c * chunk_size, (c + 1) * chunk_size). Its rows (one per
prompt, the record schema of DESIGN.md, gate columns empty) go to
``runs/NAME/generated/chunk-XXXXXX.parquet`` through a temporary name and an atomic rename.
A chunk whose file exists is skipped, so rerunning the same command after a crash redoes
at most the chunks that were in flight. Slurm array task k of K takes the chunks c with
c mod K == k.

SIGUSR1 (Slurm's warning before a time limit) lets the chunk in flight finish and starts no
other: ``generate_run`` returns with ``stopped`` set and ``corpus generate`` exits 75, the cue
to requeue. SIGTERM stops at once and shuts the engine down.

With an outline stage (``templates.outline``) a chunk is two engine calls: every outline
first, then every extract rendered with its outline.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterable

import pyarrow as pa

from corpus.engines import Completion, Engine, Request, make_engine
from corpus.io import write_parquet
from corpus.plan import Plan, Prompt, mix64
from corpus.progress import Progress
from corpus.recipe import Recipe
from corpus.records import record_schema
from corpus.run import RunDir
from corpus.tokens import Count

GENERATE_SECONDS = b"corpus.generate_seconds"  # schema metadata: the engine time a chunk took
EXIT_STOPPED = 75  # stopped by SIGUSR1 between chunks: rerun (requeue) to continue


class _Signals:
    """SIGUSR1: stop after the chunk in flight; SIGTERM: stop now (SystemExit 143, so that
    generate_run shuts the engine down). Installed only in the main thread."""

    def __init__(self):
        self.stop = False
        self.previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = {
                signal.SIGUSR1: signal.signal(signal.SIGUSR1, self._usr1),
                signal.SIGTERM: signal.signal(signal.SIGTERM, self._term),
            }
        return self

    def _usr1(self, signum, frame):
        self.stop = True

    @staticmethod
    def _term(signum, frame):
        raise SystemExit(128 + signum)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def outline_seed(seed: int) -> int:
    """The outline request's seed: derived from the extract's, distinct from it."""
    return mix64(seed ^ 0x071E) & 0x7FFFFFFF


def make_request(plan: Plan, p: Prompt, user: str, max_tokens: int, seed: int) -> Request:
    s = plan.recipe.sampling
    kw = dict(max_tokens=max_tokens, temperature=s.temperature, top_p=s.top_p, repetition_penalty=s.repetition_penalty,
              seed=seed, stop=list(s.stop))
    if not plan.recipe.engine.chat:
        return Request(prompt=user, **kw)
    system = plan.system(p)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return Request(messages=messages, **kw)


def generate_chunk(plan: Plan, engine: Engine, c: int) -> pa.Table:
    """Generate chunk ``c`` and return its rows (record schema, one row per prompt, in index
    order; ``n_tokens`` and the verdict columns empty: the stages fill them)."""
    t0 = time.perf_counter()
    recipe = plan.recipe
    n = recipe.chunk_size
    prompts = [plan.prompt(i) for i in range(c * n, (c + 1) * n)]
    outlines: list[str | None] = [None] * n
    failed: dict[int, Completion] = {}
    if plan.t_outline is not None:
        reqs = [make_request(plan, p, plan.render(p, "outline"), recipe.sampling.outline_max_tokens, outline_seed(p.seed)) for p in prompts]
        for k, o in enumerate(engine.generate(reqs)):
            if o.finish_reason == "error":
                failed[k] = Completion(None, "error", error=f"outline stage: {o.error}")
            else:
                outlines[k] = o.text
    users = [plan.render(p, "extract", outlines[k]) for k, p in enumerate(prompts)]
    todo = [k for k in range(n) if k not in failed]
    outs = engine.generate([make_request(plan, prompts[k], users[k], recipe.sampling.max_tokens, prompts[k].seed) for k in todo])
    completions = dict(failed)
    completions.update(zip(todo, outs))
    comps = [completions[k] for k in range(n)]

    texts = [o.text for o in comps]
    schema = record_schema(recipe.entity_axes)
    cols = {f.name: [None] * n for f in schema}
    cols.update(
        id=[p.id for p in prompts],
        index=[p.index for p in prompts],
        text=texts,
        prompt=users,
        outline=outlines,
        model=[engine.model] * n,
        engine=[engine.name] * n,
        temperature=[recipe.sampling.temperature] * n,
        top_p=[recipe.sampling.top_p] * n,
        seed=[p.seed for p in prompts],
        finish_reason=[o.finish_reason for o in comps],
        prompt_tokens=[o.prompt_tokens for o in comps],
        completion_tokens=[o.completion_tokens for o in comps],
        error=[o.error for o in comps],
    )
    for key in ["topic", "audience", *recipe.entity_axes]:
        cols[key] = [p.entities.get(key) for p in prompts]
    table = pa.Table.from_pydict(cols, schema=schema)
    return table.replace_schema_metadata({GENERATE_SECONDS: f"{time.perf_counter() - t0:.3f}".encode()})


def generate_run(
    recipe: Recipe,
    out: str | os.PathLike,
    chunks: Iterable[int],
    *,
    task: int = 0,
    tasks: int = 1,
    engine: Engine | None = None,
    log=print,
) -> dict:
    """Generate the chunks of ``chunks`` that belong to array task ``task`` of ``tasks`` and are
    not done yet, freezing the recipe in ``out`` (or refusing a different one). The engine is
    built only if there is work (``engine=None``: from ``recipe.engine``). Returns counts and timings."""
    run = RunDir(out)
    if run.recipe_path.is_file():
        run.freeze(recipe)  # refuse a different recipe before spending minutes on an engine start
    mine = [c for c in chunks if c % tasks == task]
    done = run.done_chunks()
    todo = [c for c in mine if c not in done]
    stats = {"chunks": len(todo), "skipped": len(mine) - len(todo), "prompts": 0, "failed": 0, "completion_tokens": 0,
             "seconds": 0.0, "stopped": False}
    own = engine is None and bool(todo)
    # From before the engine start: a warning that arrives while vLLM loads stops before chunk one.
    with _Signals() as signals:
        try:
            if todo:
                # Before freezing: a bad --model must not leave a recipe behind that refuses the corrected command.
                engine = engine or make_engine(recipe.engine)
            run.freeze(recipe)
            if not todo:
                log(f"nothing to do: all {len(mine)} chunks of this task are in {run.generated}")
                return stats
            plan, count = Plan(recipe), Count(recipe.tokenizer)
            t0 = time.perf_counter()
            with Progress("generate", total=len(todo), unit="chunks") as bar:
                for k, c in enumerate(todo):
                    if signals.stop:
                        stats["stopped"], stats["chunks"] = True, k
                        break
                    run.remove_partial(c)
                    table = count(generate_chunk(plan, engine, c))
                    write_parquet(table, run.chunk_path(c))
                    stats["prompts"] += table.num_rows
                    stats["failed"] += sum(1 for r in table.column("finish_reason").to_pylist() if r == "error")
                    stats["completion_tokens"] += sum(t or 0 for t in table.column("completion_tokens").to_pylist())
                    dt = time.perf_counter() - t0
                    bar.update(1, f"chunk {c}: {stats['prompts'] / dt:.1f} prompts/s, {stats['completion_tokens'] / dt:,.0f} tokens/s")
        except BaseException:
            # SIGTERM (SystemExit) or a crash: shut vLLM's engine processes down rather than orphan them.
            # A normal return keeps the engine: the process (or the next caller) may reuse it.
            if own and engine is not None:
                engine.close()
            raise
    stats["seconds"] = time.perf_counter() - t0
    s = stats
    log(
        f"generated {s['chunks']} chunks ({s['prompts']} prompts, {s['failed']} failed) in {s['seconds']:.1f} s: "
        f"{s['prompts'] / s['seconds']:.1f} prompts/s, {s['completion_tokens'] / s['seconds']:,.0f} tokens/s; "
        f"{s['skipped']} chunks were already done"
        + (f"; stopped by SIGUSR1 with {len(todo) - s['chunks']} chunks left: rerun the same command to continue" if s["stopped"] else "")
    )
    return stats
