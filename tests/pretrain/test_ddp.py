import subprocess
import sys


def test_two_processes_match_one(tmp_path, packed, tiny_yaml, read_log, one_thread_env, tiny_args, train1):
    """torchrun, 2 CPU processes (gloo), micro-batch 4 each = one process accumulating 2 x 4:
    the same 8 sequences per step, so the same losses up to float summation order."""
    common = ["--data", str(packed), "--model-config", str(tiny_yaml), "--max-steps", "20", "--micro-batch", "4",
              "--batch-tokens", str(8 * 64), "--lr", "3e-3", "--warmup-steps", "5", "--log-every", "1", "--eval-every", "10"]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "corpus", "pretrain", "--out", str(tmp_path / "ddp"), *common],
        capture_output=True, text=True, timeout=300, env=one_thread_env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert train1(tiny_args(tmp_path / "one", max_steps=20, micro_batch=4, batch_tokens=8 * 64, warmup_steps=5, eval_every=10)) == 0
    a, b = read_log(tmp_path / "ddp"), read_log(tmp_path / "one")
    assert [(e["step"], e["tokens"]) for e in a] == [(e["step"], e["tokens"]) for e in b]
    assert len(a) == 22  # 20 steps + 2 evals
    assert "(4 x 64 x 1 accum x 2)" in ddp.stderr
    diffs = [abs(x.get("loss", x.get("val_loss")) - y.get("loss", y.get("val_loss"))) for x, y in zip(a, b)]
    print(f"DDP(2) vs 1 process: max |loss difference| over 20 steps + 2 evals = {max(diffs):g}")
    assert max(diffs) < 1e-5  # measured 1.2e-7
    assert b[-2]["loss"] < b[0]["loss"] - 1  # it trained


def test_validation_smaller_than_the_world_does_not_hang(tmp_path, packed, tiny_yaml, one_thread_env):
    """One validation window for 2 processes: rank 1 evaluates nothing. Evaluation must not go
    through DDP's forward (a collective), or rank 0 waits for rank 1 forever (seen in a Slurm chain)."""
    import json
    import shutil

    import numpy as np

    data = tmp_path / "packed"
    shutil.copytree(packed, data)
    meta = json.loads((data / "meta.json").read_text())
    val = np.fromfile(data / "val.bin", dtype=meta["dtype"])[: 64 + 10]  # seq_len 64: one window
    val.tofile(data / "val.bin")
    meta["tokens"]["val"] = len(val)
    (data / "meta.json").write_text(json.dumps(meta))
    p = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "corpus", "pretrain",
         "--out", str(tmp_path / "ddp"), "--data", str(data), "--model-config", str(tiny_yaml), "--max-steps", "2", "--micro-batch", "2"],
        capture_output=True, text=True, timeout=120, env=one_thread_env,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    log = [json.loads(x) for x in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert "val_loss" in log[-1] and log[-1]["val_loss"] > 0
