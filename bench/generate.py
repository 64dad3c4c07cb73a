"""Pipeline overhead of ``corpus generate`` against raw ``LLM.generate`` on the same engine.

The same N prompts, the same per-request SamplingParams (seeded) and the same ``LLM`` go
(a) straight through ``LLM.generate`` and (b) through ``corpus.generate.generate_run``
(plan, template rendering, Request/Completion conversion, token counting, Parquet writes,
atomic renames). After a warm-up the variants run in alternation, --repeats times, and the fastest run of
each counts (other work on the machine only ever slows a run down); all see a warm prefix
cache. Wall time and CPU time (this process + vLLM's engine processes) are both
compared; CPU time is far steadier when other jobs share the machine. The time the
pipeline spends outside the engine is printed too. Target: ratio (b)/(a) <= 1.05.

    PYTHONPATH=. python bench/generate.py                      # smoke model, 512 prompts x 128 tokens
    PYTHONPATH=. python bench/generate.py --model DIR --prompts 4096 --max-tokens 512 --chunk-sizes 1024

On a CPU the smoke model's text is noise; the numbers measure the machinery, not a teacher.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory or hub id (default: a fresh smoke model)")
    ap.add_argument("--prompts", type=int, default=512)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--chunk-sizes", default="512,128", help="chunk sizes to time the pipeline with (default 512,128)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes of each variant; the fastest counts (default 3)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--gpu-memory-utilization", type=float, default=None)
    args = ap.parse_args()

    from vllm import SamplingParams

    from corpus.engines import Engine, EngineConfig, make_engine
    from corpus.generate import generate_run
    from corpus.plan import Plan
    from corpus.recipe import load_recipe

    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    model = args.model
    if model is None:
        from corpus.smoke import make_smoke_model

        model = str(make_smoke_model(tmp / "smoke"))
    engine_cfg = EngineConfig(name="vllm", model=model, chat=False, dtype=args.dtype, enforce_eager=True,
                              gpu_memory_utilization=args.gpu_memory_utilization)
    # A base-model recipe (raw prompts through LLM.generate), so both sides make the same call.
    # ignore_eos is not a recipe setting: with random weights lengths vary, but identically on both sides (same seeds).
    base = {
        "name": "bench",
        "templates": {"extract": "Write a textbook section about {{ leaf }} for {{ audience }} ({{ position }}).\n"},
        "axes": {"position": ["opening", "middle", "closing"]},
        "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": args.max_tokens},
        "engine": {k: v for k, v in vars(engine_cfg).items()},
    }
    sizes = [int(s) for s in args.chunk_sizes.split(",")]
    recipes = {}
    for cs in sizes:
        path = tmp / f"recipe-{cs}.yaml"
        path.write_text(yaml.safe_dump(dict(base, chunk_size=cs)))
        recipes[cs] = load_recipe(str(path))

    t0 = time.perf_counter()
    engine = make_engine(engine_cfg)
    print(f"engine start: {time.perf_counter() - t0:.1f} s ({model})")
    llm = engine.llm

    recipe = recipes[sizes[0]]
    plan = Plan(recipe)
    prompts = [plan.prompt(i) for i in range(args.prompts)]
    texts = [plan.render(p) for p in prompts]
    s = recipe.sampling
    params = [SamplingParams(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, seed=p.seed) for p in prompts]

    import psutil

    me = psutil.Process()

    def cpu_seconds() -> float:
        """CPU time of this process and vLLM's engine processes: far less disturbed by other jobs than wall time."""
        total = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def raw() -> tuple[float, float, int]:
        t, c = time.perf_counter(), cpu_seconds()
        outs = llm.generate(texts, params, use_tqdm=False)
        return time.perf_counter() - t, cpu_seconds() - c, sum(len(o.outputs[0].token_ids) for o in outs)

    class Timed(Engine):
        """The same engine, timing the calls into it: the rest of a pipeline run is overhead."""

        name, model, inside = engine.name, engine.model, 0.0

        def generate(self, requests):
            t = time.perf_counter()
            out = engine.generate(requests)
            Timed.inside += time.perf_counter() - t
            return out

    runs = 0

    def pipeline(cs: int) -> tuple[float, float, int, float]:
        nonlocal runs
        runs += 1
        Timed.inside = 0.0
        t, c = time.perf_counter(), cpu_seconds()
        stats = generate_run(recipes[cs], tmp / f"run-{runs}", range(-(-args.prompts // cs)), engine=Timed(), log=lambda *_: None)
        dt = time.perf_counter() - t
        return dt, cpu_seconds() - c, stats["completion_tokens"], dt - Timed.inside

    # Other work on a shared machine makes single timings noisy: alternate the variants,
    # repeat, and compare the fastest run of each (wall and CPU time separately).
    raw()  # warm-up: the first batch allocates
    runs_raw, runs_pipe = [], {cs: [] for cs in sizes}
    for _ in range(args.repeats):
        runs_raw.append(raw())
        for cs in sizes:
            runs_pipe[cs].append(pipeline(cs))
    t_raw, c_raw = min(r[0] for r in runs_raw), min(r[1] for r in runs_raw)
    tok_raw = runs_raw[0][2]
    print(f"raw LLM.generate: {args.prompts} prompts x <= {args.max_tokens} tokens: {t_raw:.2f} s wall, {c_raw:.2f} s CPU "
          f"(best of {args.repeats}), {tok_raw:,} tokens, {tok_raw / t_raw:,.0f} output tokens/s, {args.prompts / t_raw:.1f} prompts/s")
    for cs in sizes:
        rs = runs_pipe[cs]
        t_pipe, c_pipe, outside = min(r[0] for r in rs), min(r[1] for r in rs), min(r[3] for r in rs)
        chunks = -(-args.prompts // cs)
        print(f"corpus generate:  chunk_size {cs} ({chunks} chunk{'s' if chunks > 1 else ''}): {t_pipe:.2f} s wall, "
              f"{c_pipe:.2f} s CPU, {rs[0][2]:,} tokens; ratio {t_pipe / t_raw:.3f} wall, {c_pipe / c_raw:.3f} CPU; "
              f"outside the engine {outside:.2f} s ({outside / t_raw:.1%})")


if __name__ == "__main__":  # vLLM spawns processes: build the engine only here
    main()
