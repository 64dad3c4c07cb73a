"""Chunked, resumable generation: ``corpus generate``.

A chunk is the fixed prompt range [c * chunk_size, (c + 1) * chunk_size). Its rows (one per
prompt, the record schema of DESIGN.md, gate columns empty) go to
``runs/NAME/generated/chunk-XXXXXX.parquet`` through a temporary name and an atomic rename.
A chunk whose file exists is skipped, so rerunning the same command after a crash redoes
at most the chunks that were in flight. Slurm array task k of K takes the chunks c with
c mod K == k.

With an outline stage (``templates.outline``) a chunk is two engine calls: every outline
first, then every extract rendered with its outline.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Callable, Iterable

from corpus.config import ConfigError
from corpus.engines import Completion, Engine, Request, make_engine
from corpus.tokens import token_counter

# pyarrow and numpy (via the plan) load in functions: `corpus --help` imports this module.
if TYPE_CHECKING:
    import pyarrow as pa

    from corpus.plan import Plan, Prompt
    from corpus.recipe import Recipe


def outline_seed(seed: int) -> int:
    """The outline request's seed: derived from the extract's, distinct from it."""
    from corpus.plan import mix64

    return mix64(seed ^ 0x071E) & 0x7FFFFFFF


def _request(plan: Plan, p: Prompt, user: str, max_tokens: int, seed: int) -> Request:
    s = plan.recipe.sampling
    kw = dict(max_tokens=max_tokens, temperature=s.temperature, top_p=s.top_p, seed=seed, stop=list(s.stop))
    if not plan.recipe.engine.chat:
        return Request(prompt=user, **kw)
    system = plan.system(p)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return Request(messages=messages, **kw)


def generate_chunk(plan: Plan, engine: Engine, c: int, count_tokens: Callable[[list[str]], list[int]] | None = None) -> pa.Table:
    """Generate chunk ``c`` and return its rows (record schema, one row per prompt, in index order)."""
    import pyarrow as pa

    from corpus.records import record_schema

    recipe = plan.recipe
    count_tokens = count_tokens or token_counter(recipe.tokenizer)
    n = recipe.chunk_size
    prompts = [plan.prompt(i) for i in range(c * n, (c + 1) * n)]
    outlines: list[str | None] = [None] * n
    failed: dict[int, Completion] = {}
    if plan.t_outline is not None:
        reqs = [_request(plan, p, plan.render(p, "outline"), recipe.sampling.outline_max_tokens, outline_seed(p.seed)) for p in prompts]
        for k, o in enumerate(engine.generate(reqs)):
            if o.finish_reason == "error":
                failed[k] = Completion(None, "error", error=f"outline stage: {o.error}")
            else:
                outlines[k] = o.text
    users = [plan.render(p, "extract", outlines[k]) for k, p in enumerate(prompts)]
    todo = [k for k in range(n) if k not in failed]
    outs = engine.generate([_request(plan, prompts[k], users[k], recipe.sampling.max_tokens, prompts[k].seed) for k in todo])
    completions = dict(failed)
    completions.update(zip(todo, outs))
    comps = [completions[k] for k in range(n)]

    texts = [o.text for o in comps]
    counted = iter(count_tokens([t for t in texts if t is not None]))
    schema = record_schema(recipe.axes)
    cols = {f.name: [None] * n for f in schema}
    cols.update(
        id=[p.id for p in prompts],
        index=[p.index for p in prompts],
        text=texts,
        n_tokens=[next(counted) if t is not None else None for t in texts],
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
    for key in ["topic", "audience", *recipe.axes]:
        cols[key] = [p.entities[key] for p in prompts]
    return pa.Table.from_pydict(cols, schema=schema)


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
    from tqdm import tqdm

    from corpus.plan import Plan
    from corpus.records import write_parquet_atomic
    from corpus.run import RunDir

    run = RunDir(out)
    if run.recipe_path.is_file():
        run.freeze(recipe)  # refuse a different recipe before spending minutes on an engine start
    mine = [c for c in chunks if c % tasks == task]
    done = run.done_chunks()
    todo = [c for c in mine if c not in done]
    stats = {"chunks": len(todo), "skipped": len(mine) - len(todo), "prompts": 0, "failed": 0, "completion_tokens": 0, "seconds": 0.0}
    if todo:
        # Before freezing: a bad --model must not leave a recipe behind that refuses the corrected command.
        engine = engine or make_engine(recipe.engine)
    run.freeze(recipe)
    if not todo:
        log(f"nothing to do: all {len(mine)} chunks of this task are in {run.generated}")
        return stats
    plan, count_tokens = Plan(recipe), token_counter(recipe.tokenizer)
    t0 = time.perf_counter()
    with tqdm(total=len(todo), unit="chunk", desc="generate", disable=not sys.stderr.isatty()) as bar:
        for c in todo:
            run.remove_partial(c)
            table = generate_chunk(plan, engine, c, count_tokens)
            write_parquet_atomic(table, run.chunk_path(c))
            stats["prompts"] += table.num_rows
            stats["failed"] += sum(1 for r in table.column("finish_reason").to_pylist() if r == "error")
            stats["completion_tokens"] += sum(t or 0 for t in table.column("completion_tokens").to_pylist())
            dt = time.perf_counter() - t0
            bar.set_postfix_str(f"{stats['prompts'] / dt:.1f} prompts/s, {stats['completion_tokens'] / dt:,.0f} tokens/s")
            bar.update()
    stats["seconds"] = time.perf_counter() - t0
    s = stats
    log(
        f"generated {s['chunks']} chunks ({s['prompts']} prompts, {s['failed']} failed) in {s['seconds']:.1f} s: "
        f"{s['prompts'] / s['seconds']:.1f} prompts/s, {s['completion_tokens'] / s['seconds']:,.0f} tokens/s; "
        f"{s['skipped']} chunks were already done"
    )
    return stats


# -- CLI ----------------------------------------------------------------------------
def _slurm_array() -> tuple[int, int] | None:
    """(task, tasks) from Slurm's array variables; ids are made 0-based with SLURM_ARRAY_TASK_MIN."""
    if "SLURM_ARRAY_TASK_ID" not in os.environ:
        return None
    task = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    return task, int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1"))


def cmd_generate(args) -> int:
    from corpus.cli import recipe_from_args

    recipe = recipe_from_args(args)
    if args.chunks:
        chunks = range(*args.chunks)
    elif args.prompts:
        chunks = range(0, -(-args.prompts // recipe.chunk_size))
    else:
        raise ConfigError("say which chunks to generate: --chunks A:B or --prompts N")
    if (args.array_task is None) != (args.array_size is None):
        raise ConfigError("--array-task and --array-size go together")
    if args.array_task is not None:
        task, tasks = args.array_task, args.array_size
    else:
        task, tasks = _slurm_array() or (0, 1)
    if not 0 <= task < tasks:
        raise ConfigError(f"array task {task} is outside 0..{tasks - 1}")
    generate_run(recipe, args.out, chunks, task=task, tasks=tasks)
    return 0


def register(sub) -> None:
    from corpus.cli import _range, engine_args

    p = sub.add_parser(
        "generate",
        help="generate chunks of the plan into runs/NAME/generated (resumable)",
        description="Generate chunks of the recipe's prompt plan with an engine into OUT/generated/chunk-XXXXXX.parquet "
        "(one row per prompt). Chunk c is prompts [c*chunk_size, (c+1)*chunk_size). Finished chunks are skipped: "
        "rerunning the same command after a crash or a preemption continues where it stopped. OUT/recipe.yaml "
        "freezes the resolved recipe (flags included); a rerun with different settings is refused. "
        "Slurm arrays: task k of K takes chunks c with c mod K == k (from --array-task/--array-size, "
        "else SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT).",
    )
    engine_args(p)
    p.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--chunks", type=_range, metavar="A:B", help="chunks A..B-1")
    p.add_argument("--prompts", type=int, metavar="N", help="the chunks that cover prompts 0..N-1 (rounded up to whole chunks)")
    p.add_argument("--array-task", type=int, metavar="K", help="this task's number, 0-based (default: from SLURM_ARRAY_TASK_ID)")
    p.add_argument("--array-size", type=int, metavar="N", help="number of array tasks (default: SLURM_ARRAY_TASK_COUNT)")
    p.set_defaults(func=cmd_generate)
