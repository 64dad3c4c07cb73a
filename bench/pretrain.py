"""Training throughput: `corpus pretrain`'s loop vs Hugging Face Trainer, CPU, one run each.

Same model (the `smoke` preset: 4 x 256, seq 256; vocabulary of a BPE trained on the spot on a
templated corpus, printed), same sequences in the same order, same batch (8 sequences x 2 accumulation steps =
4,096 tokens per optimizer step), float32, AdamW, cosine schedule, clipping, one thread each
(the machine is shared; 2 threads under contention were up to 30x slower, see tests/pretrain).
Two measures: wall-clock tokens/s over steps 3..N, and tokens per CPU-second of the process
from the difference between a long and a short run (robust to other processes on a shared
machine). Then one more pass with timers around each phase of a step shows where the time goes.

    PYTHONPATH=$PWD .venv/bin/python bench/pretrain.py [--steps 12 --short 4 --rounds 2]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

# This file is named pretrain.py: drop its own directory from the path so `pretrain` is the package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np
import pyarrow as pa
import torch

from corpus.io import write_parquet
from corpus.records import record_schema
from pretrain.model import hf_config, resolve
from pretrain.pack import load_meta, pack
from pretrain.tokenizer import train_tokenizer
from pretrain.train import TrainArgs, batch_offsets, train

MICRO, ACCUM, WARMUP_STEPS = 8, 2, 2


def make_corpus(d: Path, n: int = 3000) -> Path:
    r = random.Random(0)
    words = "list matrix graph queue string tree vector table sorts reverses counts filters sums merges".split()
    rows = []
    for i in range(n):
        a, b, k = r.choice(words), r.choice(words), r.randint(2, 99)
        text = (f"# {a} and {b}\n\nWe use a {a} to hold {k} items, then {b} them.\n\n```python\ndef {a}_{b}_{i}(xs):\n"
                f"    return [x * {k} for x in xs if x % {k % 7 + 2}]\n```\n")
        rows.append({"id": f"bench-{i}", "index": i, "text": text})
    write_parquet(pa.Table.from_pylist(rows, schema=record_schema([])), d / "corpus" / "part-00000.parquet")
    return d / "corpus"


def ours(data: Path, out: Path, steps: int) -> tuple[float, float]:
    cpu = time.process_time()
    rc = train(TrainArgs(data=str(data), out=str(out), preset="smoke", max_steps=steps, micro_batch=MICRO,
                         batch_tokens=MICRO * ACCUM * 256, warmup_steps=5, log_every=1, keep=1))
    cpu = time.process_time() - cpu
    assert rc == 0
    log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in ln]
    timed = [e for e in log if e["step"] > WARMUP_STEPS]
    per_step = log[0]["tokens"]
    return per_step * len(timed) / sum(per_step / e["tokens_per_s"] for e in timed), cpu


def hf_trainer(data: Path, steps: int) -> tuple[float, float]:
    from torch.utils.data import Dataset, SequentialSampler
    from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    meta, cfg = load_meta(data), resolve("smoke")
    T = cfg.seq_len
    tokens = np.memmap(data / "train.bin", dtype=meta["dtype"], mode="r")
    n_seqs = MICRO * ACCUM
    # Exactly the sequences our loop reads, in its order.
    offs = np.concatenate([batch_offsets(len(tokens), T, n_seqs, 1337, s, "random") for s in range(steps)])

    class Seqs(Dataset):
        def __len__(self):
            return len(offs)

        def __getitem__(self, i):
            x = torch.from_numpy(tokens[offs[i] : offs[i] + T].astype(np.int64))
            return {"input_ids": x, "labels": x}

    class InOrder(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    class Clock(TrainerCallback):
        ends: list[float] = []

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())

    cpu = time.process_time()
    torch.manual_seed(1337)
    model = LlamaForCausalLM(hf_config(cfg, meta["vocab_size"], meta["eos_id"]))
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp, max_steps=steps, per_device_train_batch_size=MICRO, gradient_accumulation_steps=ACCUM,
            learning_rate=6e-4, lr_scheduler_type="cosine", warmup_steps=5, weight_decay=0.1, adam_beta2=0.95,
            max_grad_norm=1.0, logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
            dataloader_num_workers=0, seed=1337, disable_tqdm=True,
        )
        clock = Clock()
        InOrder(model=model, args=targs, train_dataset=Seqs(), callbacks=[clock]).train()
    cpu = time.process_time() - cpu
    t = clock.ends
    return n_seqs * T * (len(t) - WARMUP_STEPS) / (t[-1] - t[WARMUP_STEPS - 1]), cpu


def breakdown(data: Path, steps: int) -> dict[str, float]:
    """Seconds per optimizer step in each phase, timed around the same operations our loop runs."""
    import torch.nn.functional as F
    from transformers import LlamaForCausalLM

    meta, cfg = load_meta(data), resolve("smoke")
    T, V = cfg.seq_len, meta["vocab_size"]
    tokens = np.memmap(data / "train.bin", dtype=meta["dtype"], mode="r")
    torch.manual_seed(1337)
    model = LlamaForCausalLM(hf_config(cfg, V, meta["eos_id"]))
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    phases = dict.fromkeys(["data", "forward+loss", "backward", "clip+optimizer"], 0.0)
    for step in range(steps):
        offs = batch_offsets(len(tokens), T, MICRO * ACCUM, 1337, step, "random")
        for i in range(ACCUM):
            t0 = time.perf_counter()
            x = torch.from_numpy(np.stack([tokens[o : o + T + 1] for o in offs[i * MICRO : (i + 1) * MICRO]]).astype(np.int64))
            t1 = time.perf_counter()
            loss = F.cross_entropy(model(input_ids=x[:, :-1], use_cache=False).logits.float().reshape(-1, V), x[:, 1:].reshape(-1))
            t2 = time.perf_counter()
            (loss / ACCUM).backward()
            t3 = time.perf_counter()
            if step >= WARMUP_STEPS:
                phases["data"] += t1 - t0
                phases["forward+loss"] += t2 - t1
                phases["backward"] += t3 - t2
        t0 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= WARMUP_STEPS:
            phases["clip+optimizer"] += time.perf_counter() - t0
    return {k: v / (steps - WARMUP_STEPS) for k, v in phases.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps of a long run (default 12)")
    ap.add_argument("--short", type=int, default=4, help="optimizer steps of a short run (default 4)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (ours, Trainer long; Trainer, ours short) (default 2)")
    args = ap.parse_args()
    if not WARMUP_STEPS < args.short < args.steps:
        ap.error(f"need {WARMUP_STEPS} < --short < --steps")
    torch.set_num_threads(1)
    batch = MICRO * 256 * ACCUM
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        corpus = make_corpus(d)
        train_tokenizer(corpus, 2048, d / "tok")
        meta = pack(corpus, d / "tok", d / "packed", val_fraction=0.0)
        print(f"data: {meta['tokens']['train']:,} tokens, vocab {meta['vocab_size']}; model: smoke preset; "
              f"batch {MICRO} x 256 x {ACCUM} accum = {batch:,} tokens/step; float32, 1 thread")
        # Two measures. Wall clock (tokens/s over steps 3..N of the long runs) moves with the machine's load.
        # CPU time of the process is what the work itself costs: (CPU of a long run - CPU of a short run) /
        # the extra steps cancels start-up, model init and the final save/export of both sides.
        wall = {"ours": [], "trainer": []}
        cpu = {(w, n): [] for w in ("ours", "trainer") for n in (args.steps, args.short)}
        order = [("ours", args.steps), ("trainer", args.steps), ("trainer", args.short), ("ours", args.short)]
        for i, (who, n) in enumerate(order * args.rounds):
            tps, c = ours(d / "packed", d / f"ours{i}", n) if who == "ours" else hf_trainer(d / "packed", n)
            cpu[who, n].append(c)
            if n == args.steps:
                wall[who].append(tps)
            print(f"  run {i + 1}: {who:8s} {n:3d} steps  wall {tps:8,.0f} tokens/s  CPU {c:6.1f} s")
        ph = breakdown(d / "packed", max(WARMUP_STEPS + 4, args.steps // 2))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    per_cpu = {w: batch * (args.steps - args.short) / (mean(cpu[w, args.steps]) - mean(cpu[w, args.short])) for w in wall}
    print(f"{'':22s} {'tokens/CPU-s':>13s} {'wall tokens/s':>14s}")
    print(f"{'corpus pretrain loop':22s} {per_cpu['ours']:13,.0f} {mean(wall['ours']):14,.0f}")
    print(f"{'HF Trainer':22s} {per_cpu['trainer']:13,.0f} {mean(wall['trainer']):14,.0f}")
    print(f"ratio (ours / Trainer): {per_cpu['ours'] / per_cpu['trainer']:.3f} by CPU time, "
          f"{mean(wall['ours']) / mean(wall['trainer']):.3f} by wall clock  (target >= 1.0)")
    total = sum(ph.values())
    print(f"where a step's time goes (our operations, {total:.3f} s/step):")
    for k, v in ph.items():
        print(f"  {k:15s} {v:7.3f} s  {v / total:6.1%}")


if __name__ == "__main__":
    main()
