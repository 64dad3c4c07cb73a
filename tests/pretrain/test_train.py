import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from corpus.config import ConfigError
from pretrain.model import PRESETS, count_params, resolve
from pretrain.train import EXIT_INTERRUPTED, MARKER, STOPPED, find_checkpoint, lr_factor


def test_smoke_loss_falls(smoke_run, read_log):
    log = read_log(smoke_run)
    train_steps = [e for e in log if "loss" in e]
    assert [e["step"] for e in train_steps] == list(range(1, 101))
    first, last = train_steps[0]["loss"], train_steps[-1]["loss"]
    assert first > 5.5  # ~ln(512) at random init
    assert last < 0.4 * first
    vals = [e for e in log if "val_loss" in e]
    assert [e["step"] for e in vals] == [50, 100] and vals[1]["val_loss"] < vals[0]["val_loss"] < first
    for k in ("lr", "tokens", "tokens_per_s"):
        assert all(k in e for e in train_steps)
    assert train_steps[-1]["tokens"] == 100 * 8 * 64
    assert (smoke_run / "final" / "config.json").exists() and list((smoke_run / "tb").iterdir())
    assert (smoke_run / "checkpoints" / "step-00000100" / MARKER).exists()


def test_resume_is_exact(tmp_path, tiny_args, read_log, train1):
    # Accumulation 2, eval every 10: stop after step 12, resume, compare with an unbroken run.
    kw = dict(max_steps=30, batch_tokens=2 * 8 * 64, eval_every=10)
    assert train1(tiny_args(tmp_path / "full", **kw)) == 0
    assert train1(tiny_args(tmp_path / "cut", stop_at=12, **kw)) == EXIT_INTERRUPTED
    assert find_checkpoint("auto", tmp_path / "cut" / "checkpoints").name == "step-00000012"
    assert not (tmp_path / "cut" / "final").exists() and (tmp_path / "cut" / STOPPED).exists()
    assert train1(tiny_args(tmp_path / "cut", resume="auto", **kw)) == 0
    assert not (tmp_path / "cut" / STOPPED).exists()
    full, cut = read_log(tmp_path / "full"), read_log(tmp_path / "cut")
    key = lambda e: (e["step"], "val_loss" in e)  # noqa: E731
    assert [key(e) for e in cut] == [key(e) for e in full]  # no step logged twice or missing
    later = [(a, b) for a, b in zip(full, cut) if a["step"] > 12]
    assert len(later) == 18 + 2  # 18 train steps, val at 20 and 30
    worst = max(abs(a.get("loss", a.get("val_loss")) - b.get("loss", b.get("val_loss"))) for a, b in later)
    print(f"resume: max |loss difference| over steps 13-30 = {worst:g}")
    assert worst <= 1e-6


def test_resume_skips_incomplete_checkpoints(tmp_path, tiny_args, train1):
    ck = tmp_path / "checkpoints"
    # Left by killed runs (corpus.io's names: host and pid of the writer): removed at the next save.
    (ck / ".step-00000001.tmp-deadhost-4242").mkdir(parents=True)
    (ck / ".step-00000001.tmp-deadhost-4242" / "model.pt").write_bytes(b"half")
    (ck / ".step-00000003.old-deadhost-4243").mkdir()
    assert train1(tiny_args(tmp_path, max_steps=6, save_every=2, keep=2)) == 0
    assert sorted(p.name for p in ck.iterdir()) == ["step-00000004", "step-00000006"]  # keep=2
    # A newer checkpoint whose write was cut off (no marker) is never resumed from.
    shutil.copytree(ck / "step-00000006", ck / "step-00000008")
    (ck / "step-00000008" / MARKER).unlink()
    assert find_checkpoint("auto", ck).name == "step-00000006"
    with pytest.raises(ConfigError, match="not a complete checkpoint"):
        find_checkpoint(str(ck / "step-00000008"), ck)
    with pytest.raises(ConfigError, match="--resume auto"):
        train1(tiny_args(tmp_path, max_steps=6))


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_saving_a_step_again_keeps_a_complete_checkpoint(tmp_path, tiny_args, train1, monkeypatch, exchange):
    """A run resumed from step 2 saves step 4 again, over the complete step 4 of the first run. With
    the atomic exchange, a reader polling step-4's marker and weights never finds them missing."""
    import corpus.io

    ck = tmp_path / "checkpoints"
    assert train1(tiny_args(tmp_path, max_steps=4, save_every=2)) == 0
    step4 = ck / "step-00000004"
    before = step4.stat().st_ino

    real, swaps = corpus.io._exchange, []

    def observed(a, b):
        ok = real(a, b) if exchange else False
        swaps.append((b.name, ok))
        return ok

    monkeypatch.setattr(corpus.io, "_exchange", observed)
    missing, reads, stop = [], [0], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                for name in (MARKER, "model.pt"):
                    with open(step4 / name, "rb") as f:
                        f.read(1)
            except FileNotFoundError as e:
                missing.append(e.filename)
            reads[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        assert train1(tiny_args(tmp_path, max_steps=4, save_every=2, resume=str(ck / "step-00000002"))) == 0
    finally:
        stop.set()
        t.join()
    assert step4.stat().st_ino != before  # step 4 really was written again
    assert ("step-00000004", exchange) in swaps
    assert json.loads((step4 / MARKER).read_text())["step"] == 4
    assert sorted(p.name for p in ck.iterdir()) == ["step-00000002", "step-00000004"]  # no temporary or old directory left
    assert reads[0] > 100
    if exchange:
        assert not missing, f"step-00000004 incomplete in {len(missing)} of {reads[0]} reads: {missing[:3]}"


def test_sigusr1_checkpoints_and_resumes(tmp_path, packed, tiny_yaml, read_log, one_thread_env):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "corpus", "pretrain", "--data", str(packed), "--out", str(out),
           "--model-config", str(tiny_yaml), "--max-steps", "100000", "--micro-batch", "4", "--log-every", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=one_thread_env)
    log = out / "train_log.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.2)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=60) == EXIT_INTERRUPTED, proc.stderr.read()
    ckpt = find_checkpoint("auto", out / "checkpoints")
    k = json.loads((ckpt / MARKER).read_text())["step"]
    assert read_log(out)[-1]["step"] == k  # the checkpoint is the last step taken
    assert json.loads((out / STOPPED).read_text())["checkpoint"] == f"checkpoints/{ckpt.name}"
    # Resume runs on from k (2 more steps, then stops again); the log has no gap or repeat.
    done = subprocess.run(cmd + ["--resume", "auto", "--stop-at", str(k + 2)], capture_output=True, text=True, timeout=120, env=one_thread_env)
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert [e["step"] for e in read_log(out)] == list(range(1, k + 3))
    assert find_checkpoint("auto", out / "checkpoints").name == f"step-{k + 2:08d}"


def test_presets(tmp_path):
    n = {name: count_params(cfg, 32000) for name, cfg in PRESETS.items()}
    print({k: f"{v / 1e6:.1f}M" for k, v in n.items()})
    assert n["smoke"] < 15e6 and 15e6 < n["20m"] < 40e6 and 90e6 < n["125m"] < 160e6
    assert 280e6 < n["350m"] < 420e6 and 1.2e9 < n["1.3b"] < 1.5e9
    big = PRESETS["1.3b"]
    assert (big.num_layers, big.hidden_size, big.num_heads) == (24, 2048, 32)
    assert all(c.head_dim >= 32 for c in PRESETS.values())  # vLLM CPU attention
    (tmp_path / "o.yaml").write_text("num_layers: 3\nwidth: 1\n")
    with pytest.raises(ConfigError, match="o.yaml:2: width: unknown key"):
        resolve("smoke", str(tmp_path / "o.yaml"))
    (tmp_path / "o.yaml").write_text("num_layers: 3\nnum_heads: 5\n")
    with pytest.raises(ConfigError, match="o.yaml:2: num_heads: must divide hidden_size"):
        resolve("smoke", str(tmp_path / "o.yaml"))
    (tmp_path / "o.yaml").write_text("num_layers: 3\n")
    assert resolve("smoke", str(tmp_path / "o.yaml")).num_layers == 3
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve("7b")


def test_lr_schedule():
    f = [lr_factor(s, 10, 110, 0.1) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[10] == 1.0
    assert f[60] == pytest.approx(0.55) and f[110] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)


def test_cli_errors(tmp_path, packed, capsys):
    from corpus.cli import main

    assert main(["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--max-steps", "1"]) == 2
    assert "no meta.json" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(packed), "--out", str(tmp_path / "o")]) == 2
    assert "exactly one of --max-steps and --max-tokens" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(packed), "--out", str(tmp_path / "o"), "--max-steps", "1", "--preset", "7b"]) == 2
    assert "unknown preset '7b'" in capsys.readouterr().err
