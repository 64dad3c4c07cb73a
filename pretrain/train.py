"""The pretraining loop: plain PyTorch, top to bottom, one process or DDP under torchrun.

Batch arithmetic: one optimizer step sees ``batch_tokens`` tokens =
``seq_len x micro_batch x accum x world_size``. The sequences of step s are a pure function
of (seed, s) (random offsets into ``train.bin``, or consecutive windows), drawn for the whole
global batch and then split by rank, so

  * the data position is just the step: a resumed run reads exactly what it would have read;
  * N processes with accumulation A/N see the same batches as one process with A.

Checkpoints (``OUT/checkpoints/step-00001000/``) hold the model, optimizer, scheduler, step,
data position and every rank's RNG states (gathered to rank 0, which writes them all). They are
written into a temporary directory (``corpus.io.atomic_dir``: ``.step-00001000.tmp-HOST-PID``),
the ``COMPLETE`` marker last, then swapped in (``corpus.io.replace_dir``: one atomic exchange when
the step directory already exists, so it holds a complete checkpoint at every moment);
``--resume auto`` takes the newest directory with a marker, so a write cut off by a kill is never
resumed from, and the next save removes what such a write left behind.

Finetuning (phi-1's stage on exercises): ``--init-from`` starts from an exported model instead of
a fresh init, and data packed with ``--format exercises`` carries a mask: prompt targets are
ignored, so the loss (trained on and reported) is the mean over solution tokens. Each step's loss
is a sum over its targets divided by the global batch's target count (computed from the mask on
every rank alike), so accumulation and DDP weigh every solution token equally. Windows of masked
data start at document starts, so each opens with a whole statement.

SIGUSR1 / SIGTERM (and ``--stop-at``) stop at the next step boundary after a checkpoint with
exit code 75 (EXIT_INTERRUPTED) and ``OUT/STOPPED.json``; a run that reaches its last step exits 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from corpus.config import ConfigError
from corpus.io import atomic_dir, remove_stale, write_json, write_marker, write_text
from corpus.progress import Progress
from pretrain.model import from_pretrained, hf_config, resolve
from pretrain.pack import load_meta

# "Temporary failure, try again" (sysexits.h): stopped early with a complete checkpoint.
EXIT_INTERRUPTED = 75
MARKER = "COMPLETE"
# Also written when stopping early: torchrun reports any failed worker as exit 1, so a script
# launched through torchrun tests for this file instead of the exit code. Removed when a run starts.
STOPPED = "STOPPED.json"
# The label of a target the loss ignores (a prompt token): cross_entropy's default ignore_index.
IGNORE = -100

# Dense bf16 peak FLOP/s per GPU, from the vendors' datasheets, for MFU.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


@dataclass
class TrainArgs:
    data: str
    "directory written by `corpus pack` (train.bin, val.bin, meta.json, tokenizer/)"
    out: str
    "run directory: train_log.jsonl, tb/, checkpoints/, final/"
    preset: str = "smoke"
    "model size preset: smoke, 20m, 125m, 350m, 1.3b"
    model_config: str | None = None
    "YAML file of model config keys that override the preset"
    init_from: str | None = None
    "exported model directory (a run's final/) to finetune instead of a fresh init; its config.json replaces --preset"
    max_steps: int = 0
    "optimizer steps to train (or use max_tokens)"
    max_tokens: int = 0
    "tokens to train on; steps = ceil(max_tokens / batch_tokens)"
    batch_tokens: int = 0
    "tokens per optimizer step over all processes (0 = one micro-batch per process)"
    micro_batch: int = 8
    "sequences per forward pass per process"
    lr: float = 6e-4
    "peak learning rate"
    min_lr_ratio: float = 0.1
    "cosine decays to lr x this"
    warmup_steps: int = 100
    "linear warmup steps"
    weight_decay: float = 0.1
    "AdamW weight decay on matrices and embeddings (never on norms or biases)"
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    "clip the global gradient norm (0 = off)"
    sampling: Literal["random", "sequential"] = "random"
    "random offsets into train.bin, or consecutive windows"
    eval_every: int = 0
    "validation loss every N steps (0 = only at the end)"
    eval_batches: int = 20
    "micro-batches of validation data per evaluation (fixed windows, the same every time)"
    save_every: int = 0
    "checkpoint every N steps (0 = only at the end or when stopped)"
    keep: int = 3
    "complete checkpoints to keep"
    resume: str = "none"
    "'auto' (newest complete checkpoint in OUT, else start fresh), 'none', or a checkpoint directory"
    seed: int = 1337
    log_every: int = 10
    "log every N steps"
    stop_at: int = 0
    "checkpoint and exit 75 after this step, as if signalled (time-limited jobs, tests)"
    export_checkpoints: bool = False
    "also export each checkpoint as a Hugging Face model (checkpoint/hf/)"
    compile: bool = True
    "torch.compile the model (GPU only)"

    def validate(self):
        if (self.max_steps > 0) == (self.max_tokens > 0):
            yield "max_steps", "give exactly one of --max-steps and --max-tokens"
        for k in ("micro_batch", "keep", "log_every"):
            if getattr(self, k) <= 0:
                yield k, "must be positive"
        if not 0 <= self.min_lr_ratio <= 1:
            yield "min_lr_ratio", "must be in [0, 1]"
        if self.init_from and self.model_config:
            yield "model_config", "the model's shape comes from --init-from"


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine to ``min_ratio`` at ``total``; ``step`` counts from 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def batch_offsets(n_tokens: int, seq_len: int, n_seqs: int, seed: int, step: int, sampling: str,
                  starts: np.ndarray | None = None) -> np.ndarray:
    """Start offsets of the ``n_seqs`` sequences of global step ``step`` (0-based); drawn from
    ``starts`` (document starts) when given: random ones, or the next ones in order."""
    if starts is not None:
        if sampling == "random":
            return starts[np.random.default_rng([seed, step]).integers(0, len(starts), size=n_seqs)]
        return starts[(step * n_seqs + np.arange(n_seqs)) % len(starts)]
    if sampling == "random":
        return np.random.default_rng([seed, step]).integers(0, n_tokens - seq_len, size=n_seqs)
    windows = (n_tokens - 1) // seq_len
    return ((step * n_seqs + np.arange(n_seqs)) % windows) * seq_len


def doc_starts(tokens: np.ndarray, eos: int, seq_len: int) -> np.ndarray:
    """Offsets where a document begins (0 and after each end-of-text) and a window of ``seq_len + 1`` fits."""
    starts = np.concatenate([[0], np.flatnonzero(tokens == eos) + 1])
    return starts[starts < len(tokens) - seq_len]


def find_checkpoint(resume: str, ckpt_dir: Path) -> Path | None:
    if resume == "none":
        return None
    if resume == "auto":
        done = sorted(p for p in ckpt_dir.glob("step-*") if (p / MARKER).exists())
        return done[-1] if done else None
    p = Path(resume)
    if not (p / MARKER).exists():
        raise ConfigError(f"--resume {resume}: not a complete checkpoint (no {MARKER} marker)")
    return p


def export(model, tokenizer_dir: Path, dest: Path) -> None:
    """save_pretrained (safetensors) + the tokenizer, through a temporary directory swapped in whole."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers' own tqdm bar ("Writing model shards"): noise in a log
    try:
        with atomic_dir(dest) as tmp:
            model.save_pretrained(tmp)
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    remove_stale(dest.parent, dest.name)  # left by a killed export


class _Stop:
    """Set by SIGUSR1/SIGTERM; acted on at the next step boundary."""

    requested = False

    @classmethod
    def handler(cls, signum, frame):
        cls.requested = True


def train(a: TrainArgs) -> int:
    """Run (or resume) training; returns 0 when finished, EXIT_INTERRUPTED when stopped early."""
    import torch
    import torch.distributed as dist

    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cuda = torch.cuda.is_available()
    if ddp:
        dist.init_process_group("nccl" if cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    _Stop.requested = False
    previous = {sig: signal.signal(sig, _Stop.handler) for sig in (signal.SIGUSR1, signal.SIGTERM)}
    try:
        return _run(a, ddp, rank, world, device)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if ddp:
            dist.destroy_process_group()


def _run(a: TrainArgs, ddp: bool, rank: int, world: int, device) -> int:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP
    from transformers import LlamaForCausalLM

    master, cuda = rank == 0, device.type == "cuda"
    # bf16 autocast on GPU; float32 on CPU (CPU bf16 matmuls are slow and lose the 1e-6 resume check).
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    # -- data and shapes -------------------------------------------------------------
    data, out = Path(a.data), Path(a.out)
    meta = load_meta(data)
    cfg = from_pretrained(a.init_from, meta) if a.init_from else resolve(a.preset, a.model_config)
    T = cfg.seq_len
    masked = meta.get("format", "text") == "exercises"
    train_tok = np.memmap(data / "train.bin", dtype=meta["dtype"], mode="r")
    # No evaluation when the validation split cannot fill one sequence (e.g. --val-fraction 0).
    val_tok = np.memmap(data / "val.bin", dtype=meta["dtype"], mode="r") if meta["tokens"]["val"] > T else None
    if len(train_tok) != meta["tokens"]["train"]:
        raise ConfigError(f"{data}/train.bin: {len(train_tok)} tokens, meta.json says {meta['tokens']['train']}; re-run `corpus pack`")
    if len(train_tok) < T + 2:
        raise ConfigError(f"{data}: {len(train_tok)} training tokens, fewer than one sequence of {T + 1}")
    # Masked data: the loss mask (1 = a solution target) and the document starts windows begin at.
    train_mask = np.memmap(data / "train.mask.bin", dtype=np.uint8, mode="r") if masked else None
    val_mask = np.memmap(data / "val.mask.bin", dtype=np.uint8, mode="r") if masked and val_tok is not None else None
    if masked and len(train_mask) != len(train_tok):
        raise ConfigError(f"{data}/train.mask.bin: {len(train_mask)} bytes for {len(train_tok)} tokens; re-run `corpus pack`")
    train_starts = doc_starts(train_tok, meta["eos_id"], T) if masked else None
    # Evaluation windows: document starts (masked data) or consecutive windows, computed once.
    if val_tok is not None:
        val_starts = doc_starts(val_tok, meta["eos_id"], T) if masked else np.arange((len(val_tok) - 1) // T) * T
    per_step = world * a.micro_batch * T
    batch_tokens = a.batch_tokens or per_step
    if batch_tokens % per_step:
        raise ConfigError(
            f"--batch-tokens {batch_tokens} must be a multiple of world_size x micro_batch x seq_len = "
            f"{world} x {a.micro_batch} x {T} = {per_step}"
        )
    accum = batch_tokens // per_step
    n_seqs = batch_tokens // T  # sequences per optimizer step, all ranks together
    total = a.max_steps or math.ceil(a.max_tokens / batch_tokens)
    V = meta["vocab_size"]

    # -- model and optimizer ---------------------------------------------------------
    torch.manual_seed(a.seed)  # identical initial weights on every rank
    if a.init_from:  # float32 master weights, as a fresh init (autocast does bf16 on GPU)
        raw = LlamaForCausalLM.from_pretrained(a.init_from, dtype=torch.float32).to(device)
    else:
        raw = LlamaForCausalLM(hf_config(cfg, V, meta["eos_id"])).to(device)
    n_params = sum(p.numel() for p in raw.parameters())
    decay = [p for p in raw.parameters() if p.dim() >= 2]
    no_decay = [p for p in raw.parameters() if p.dim() < 2]  # norms (and biases, if any)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, betas=(a.beta1, a.beta2), eps=1e-8, fused=True,  # one kernel per step, CPU and GPU
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, a.warmup_steps, total, a.min_lr_ratio))

    # -- resume ------------------------------------------------------------------------
    ckpt_dir = out / "checkpoints"
    start = 0
    ckpt = find_checkpoint(a.resume, ckpt_dir)
    if ckpt is None and a.resume == "none" and any(ckpt_dir.glob("step-*")):
        raise ConfigError(f"{out} already has checkpoints: pass --resume auto to continue, or choose another --out")
    if ckpt is not None:
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
        if state["model_config"] != dataclasses.asdict(cfg):
            raise ConfigError(f"{ckpt}: checkpoint model config {state['model_config']} differs from {dataclasses.asdict(cfg)}")
        if state["batch_tokens"] != batch_tokens:
            raise ConfigError(f"{ckpt}: checkpoint used --batch-tokens {state['batch_tokens']}, this run {batch_tokens}")
        raw.load_state_dict(torch.load(ckpt / "model.pt", map_location=device, weights_only=True))
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True))
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
        rng_file = ckpt / f"rng-{rank}.pt"
        _set_rng(torch, torch.load(rng_file if rng_file.exists() else ckpt / "rng-0.pt", weights_only=False), cuda)
    else:
        random.seed(a.seed + rank)
        np.random.seed(a.seed + rank)

    # Evaluation runs `local`, never the DDP wrapper: DDP's forward broadcasts buffers (a collective),
    # so a rank with fewer validation windows than another would hang the others.
    model = local = torch.compile(raw) if (cuda and a.compile) else raw
    if ddp:
        model = DDP(model, device_ids=[device.index] if cuda else None)

    # -- logging -----------------------------------------------------------------------
    log_path = out / "train_log.jsonl"
    tb = None
    if master:
        out.mkdir(parents=True, exist_ok=True)
        (out / STOPPED).unlink(missing_ok=True)
        _truncate_log(log_path, start)
        run = {"args": dataclasses.asdict(a), "model": dataclasses.asdict(cfg), "params": n_params, "world_size": world,
               "accum": accum, "batch_tokens": batch_tokens, "total_steps": total, "data_meta": meta}
        write_json(out / "run.json", run)
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(out / "tb"), purge_step=start + 1)
        print(f"pretrain: {n_params / 1e6:.1f}M params, {world} process(es), {batch_tokens:,} tokens/step "
              f"({a.micro_batch} x {T} x {accum} accum x {world}), steps {start}->{total}", file=sys.stderr)
        if a.init_from:
            print(f"pretrain: initialised from {a.init_from}", file=sys.stderr)
        if masked:
            print(f"pretrain: loss on solution tokens only ({meta['solution_tokens']['train']:,} of "
                  f"{len(train_tok):,} training tokens)", file=sys.stderr)
    flops_per_token = 6 * n_params + 12 * cfg.num_layers * cfg.hidden_size * T
    peak = next((f for k, f in PEAK_FLOPS.items() if cuda and k in torch.cuda.get_device_name(device)), None)

    def log(entry: dict) -> None:
        if not master:
            return
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        for k, v in entry.items():
            if k != "step" and isinstance(v, (int, float)):
                tb.add_scalar(k, v, entry["step"])

    def batch(tokens, mask, offsets):
        x = np.stack([tokens[o : o + T + 1] for o in offsets]).astype(np.int64)
        x, y = x[:, :-1], x[:, 1:]
        if mask is not None:  # prompt targets carry no loss
            y = np.where(np.stack([mask[o + 1 : o + T + 1] for o in offsets]) == 1, y, IGNORE)
        return torch.from_numpy(x).to(device, non_blocking=True), torch.from_numpy(y).to(device, non_blocking=True)

    def n_targets(mask, offsets) -> int:
        """Targets the loss counts in these windows: every one, or the masked-in ones."""
        return len(offsets) * T if mask is None else int(sum(mask[o + 1 : o + T + 1].sum() for o in offsets))

    def evaluate() -> float:
        # Fixed, evenly spaced windows: every evaluation of every run measures the same tokens.
        offs = val_starts[np.linspace(0, len(val_starts) - 1, min(len(val_starts), a.eval_batches * a.micro_batch * world)).astype(np.int64)]
        mine = offs[rank::world]
        tot = torch.zeros(2, dtype=torch.float64, device=device)
        model.eval()
        with torch.no_grad():
            for i in range(0, len(mine), a.micro_batch):
                x, y = batch(val_tok, val_mask, mine[i : i + a.micro_batch])
                with autocast:
                    logits = local(input_ids=x, use_cache=False).logits
                tot[0] += F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1), reduction="sum").double()
                tot[1] += (y != IGNORE).sum()
        model.train()
        if ddp:
            dist.all_reduce(tot)
        return (tot[0] / tot[1]).item()

    def save(step: int) -> None:
        # Every rank's RNG state goes to rank 0, which writes the whole checkpoint directory.
        rng = _get_rng(torch, cuda)
        rngs = [None] * world if master else None
        if ddp:
            dist.gather_object(rng, rngs, dst=0)
        elif master:
            rngs = [rng]
        if master:
            # Written into a temporary directory, swapped in whole: when step-N already exists
            # (a run resumed from an earlier checkpoint saves the same step again) the two are
            # exchanged in one atomic rename, so step-N holds a complete checkpoint at every moment.
            with atomic_dir(ckpt_dir / f"step-{step:08d}") as tmp:
                for r, state_r in enumerate(rngs):
                    torch.save(state_r, tmp / f"rng-{r}.pt")
                torch.save(raw.state_dict(), tmp / "model.pt")
                torch.save(opt.state_dict(), tmp / "optimizer.pt")
                state = {"step": step, "tokens": step * batch_tokens, "scheduler": sched.state_dict(),
                         "data": {"sampling": a.sampling, "seed": a.seed, "next_step": step},
                         "model_config": dataclasses.asdict(cfg), "batch_tokens": batch_tokens}
                torch.save(state, tmp / "state.pt")
                if a.export_checkpoints:
                    export(raw, data / "tokenizer", tmp / "hf")
                write_marker(tmp / MARKER, {"step": step, "tokens": step * batch_tokens})  # last
            done = sorted(p for p in ckpt_dir.glob("step-*") if (p / MARKER).exists())
            for old in done[: -a.keep]:
                shutil.rmtree(old)
            remove_stale(ckpt_dir, "step-*")  # temporary directories of writes cut off by a kill
        _barrier()

    def _barrier():
        if ddp:
            dist.barrier()

    # -- the loop ----------------------------------------------------------------------
    # Master only: a bar on a terminal, one line per log interval in a (Slurm) log.
    bar = Progress("pretrain", total=total, unit="steps", initial=start) if master else None
    try:
        model.train()
        step, t_last, tok_last = start, time.perf_counter(), start * batch_tokens
        while step < total:
            offs = batch_offsets(len(train_tok), T, n_seqs, a.seed, step, a.sampling, train_starts)
            mine = offs[rank * (n_seqs // world) : (rank + 1) * (n_seqs // world)]
            # Sum over targets / the whole batch's count, x world against DDP's gradient averaging:
            # loss_sum averaged over the ranks is the global batch's mean over its targets.
            scale = world / max(1, n_targets(train_mask, offs))
            loss_sum = torch.zeros((), device=device)
            for i in range(accum):
                x, y = batch(train_tok, train_mask, mine[i * a.micro_batch : (i + 1) * a.micro_batch])
                if ddp:  # all-reduce gradients only on the last micro-step
                    model.require_backward_grad_sync = i == accum - 1
                with autocast:
                    logits = model(input_ids=x, use_cache=False).logits
                loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1), reduction="sum") * scale
                loss.backward()
                loss_sum += loss.detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), a.grad_clip) if a.grad_clip > 0 else None
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1

            if step % a.log_every == 0 or step == total or step == start + 1:
                if ddp:
                    dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
                if cuda:
                    torch.cuda.synchronize()
                now, tokens = time.perf_counter(), step * batch_tokens
                tps = (tokens - tok_last) / (now - t_last)
                entry = {"step": step, "loss": loss_sum.item(), "lr": lr, "tokens": tokens, "tokens_per_s": round(tps, 1)}
                if grad_norm is not None:
                    entry["grad_norm"] = grad_norm.item()
                if peak:
                    entry["mfu"] = round(flops_per_token * tps / (peak * world), 4)
                log(entry)
                if bar is not None:
                    bar.update(completed=step, status=f"loss {entry['loss']:.3f}, lr {lr:.2e}, {tps:,.0f} tokens/s")
                t_last, tok_last = now, tokens

            paused = time.perf_counter()
            if val_tok is not None and ((a.eval_every and step % a.eval_every == 0) or step == total):
                log({"step": step, "val_loss": evaluate(), "tokens": step * batch_tokens})
            stop = _Stop.requested or step == a.stop_at
            if ddp:  # any rank signalled -> all stop at this same step
                flag = torch.tensor(float(stop), device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = bool(flag.item())
            if stop or step == total or (a.save_every and step % a.save_every == 0):
                save(step)
            t_last += time.perf_counter() - paused  # tokens/s counts training time only
            if stop and step < total:
                if master:
                    bar.close()  # before the message below
                    write_json(out / STOPPED, {"step": step, "checkpoint": f"checkpoints/step-{step:08d}", "exit_code": EXIT_INTERRUPTED})
                    print(f"pretrain: stopped after step {step}; checkpoint {ckpt_dir}/step-{step:08d}; "
                          f"exit {EXIT_INTERRUPTED} (resume with --resume auto)", file=sys.stderr)
                    tb.close()
                return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
    if master:
        if not (out / "final" / "config.json").exists() or start < total:
            export(raw, data / "tokenizer", out / "final")
        tb.close()
        print(f"pretrain: done, {total} steps; model in {out / 'final'}", file=sys.stderr)
    return 0


def _get_rng(torch, cuda) -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if cuda else None}


def _set_rng(torch, s: dict, cuda) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if cuda and s["cuda"] is not None:
        torch.cuda.set_rng_state_all(s["cuda"])


def _truncate_log(path: Path, step: int) -> None:
    """Keep only entries up to ``step`` (the resumed checkpoint): a resumed run rewrites what came after."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    write_text(path, "".join(ln + "\n" for ln in keep))
