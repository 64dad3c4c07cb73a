"""``corpus generate``: chunks of the plan into runs/NAME/generated (the Slurm array command)."""

from __future__ import annotations

import os
import signal

from corpus.cli.common import engine_args, index_range, recipe_from_args
from corpus.config import ConfigError


def _slurm_array() -> tuple[int, int] | None:
    """(task, tasks) from Slurm's array variables; ids are made 0-based with SLURM_ARRAY_TASK_MIN."""
    if "SLURM_ARRAY_TASK_ID" not in os.environ:
        return None
    task = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    return task, int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1"))


def cmd_generate(args) -> int:
    from corpus.generate import EXIT_STOPPED, generate_run

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
    # generate_run handles SIGUSR1 while it works; one that comes later (vLLM's shutdown at exit takes
    # seconds) has nothing left to stop and must not kill a task whose chunks are all written.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    stats = generate_run(recipe, args.out, chunks, task=task, tasks=tasks)
    return EXIT_STOPPED if stats["stopped"] else 0


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate chunks of the plan into runs/NAME/generated (resumable)",
        description="Generate chunks of the recipe's prompt plan with an engine into OUT/generated/chunk-XXXXXX.parquet "
        "(one row per prompt). Chunk c is prompts [c*chunk_size, (c+1)*chunk_size). Finished chunks are skipped: "
        "rerunning the same command after a crash or a preemption continues where it stopped. OUT/recipe.yaml "
        "freezes the resolved recipe (flags included); a rerun with different settings is refused. "
        "Slurm arrays: task k of K takes chunks c with c mod K == k (from --array-task/--array-size, "
        "else SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT). Exit codes: 0 done, 2 bad input, 75 stopped by SIGUSR1 "
        "after the chunk in flight (requeue or rerun to continue); SIGTERM stops at once (the chunk in flight is lost).",
    )
    engine_args(p)
    p.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--chunks", type=index_range, metavar="A:B", help="chunks A..B-1")
    p.add_argument("--prompts", type=int, metavar="N", help="the chunks that cover prompts 0..N-1 (rounded up to whole chunks)")
    p.add_argument("--array-task", type=int, metavar="K", help="this task's number, 0-based (default: from SLURM_ARRAY_TASK_ID)")
    p.add_argument("--array-size", type=int, metavar="N", help="number of array tasks (default: SLURM_ARRAY_TASK_COUNT)")
    p.set_defaults(func=cmd_generate)
