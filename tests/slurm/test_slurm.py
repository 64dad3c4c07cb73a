"""The chain as batch jobs on a real single-node Slurm cluster (slurm/local-cluster.sh: slurmctld,
slurmd and munge from Debian's packages, started once per session). Every job runs the real
corpus CLI; generation is the real vLLM on the smoke model, one engine per array task."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from corpus.chain import ACTIVE, job_tasks, summarize
from corpus.cli import main
from corpus.run import RunDir

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "slurm" / "local-cluster.sh"
TOKENS = "4k"


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local cluster, started (and installed, the first time) by slurm/local-cluster.sh; stopped
    at the end if this session started it. If it cannot start, the tests fail with its message."""
    was_up = subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0
    p = subprocess.run([CLUSTER, "start"], capture_output=True, text=True)
    assert p.returncode == 0, f"slurm/local-cluster.sh start failed ({p.returncode}):\n{p.stdout}{p.stderr}"
    yield
    if not was_up:
        subprocess.run([CLUSTER, "stop"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, vllm_engine_config) -> Path:
    """The smoke recipe in chunks of 16, with the session engine's settings (so that the reference
    `corpus build` in this process reuses that vLLM; the jobs start their own)."""
    path = tmp_path_factory.mktemp("recipe") / "smoke16.yaml"
    path.write_text(yaml.safe_dump({"base": "smoke", "name": "smoke16", "chunk_size": 16, "engine": asdict(vllm_engine_config)}))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, recipe, vllm_engine) -> pa.Table:
    """The corpus `corpus build` makes with the same recipe, seed and budget, uninterrupted."""
    out = tmp_path_factory.mktemp("build") / "run"
    assert main(["build", "--recipe", str(recipe), "--tokens", TOKENS, "--out", str(out)]) == 0
    return read_corpus(out)


@pytest.fixture
def out(tmp_path, slurm_cluster) -> Path:
    """A run directory; the jobs submitted for it are cancelled when the test ends, passed or not."""
    run = tmp_path / "run"
    yield run
    chain = run / "slurm" / "chain.json"
    if chain.is_file():
        subprocess.run(["scancel", *json.loads(chain.read_text())["jobs"].values()], capture_output=True)


def signal_batch_shell(job: str, sig: str) -> subprocess.CompletedProcess:
    """What `--signal=B:SIG@N` does before a time limit: signal the job's batch shell only (not
    its children, as `scancel --batch` would)."""
    job_id = job_tasks(job)[0]["JobId"]  # listpids takes the task's own job id, not ARRAY_TASK
    rows = [r.split() for r in subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True, check=True).stdout.splitlines()[1:]]
    shells = [r[0] for r in rows if r[2:4] == ["batch", "0"]]
    assert len(shells) == 1 and b"slurm_script" in Path(f"/proc/{shells[0]}/cmdline").read_bytes(), rows
    return subprocess.run(["kill", f"-{sig}", shells[0]], capture_output=True, text=True)


def read_corpus(run: Path) -> pa.Table:
    parts = sorted((run / "corpus").glob("part-*.parquet"))
    assert parts, f"{run}/corpus: no parts"
    return pa.concat_tables(pq.read_table(p) for p in parts)


def corpus_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "corpus", *args], capture_output=True, text=True, timeout=timeout)


def submit(recipe: Path, out: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return corpus_cli("slurm", "submit", "--recipe", str(recipe), "--tokens", TOKENS, "--out", str(out), *extra, timeout=timeout)


def test_dry_run_writes_scripts_that_sbatch_accepts(out, recipe):
    p = submit(recipe, out, "--array", "2", "--chunks", "8", "--time", "00:30:00", "--preset", "smoke",
               "--pretrain-args", "--max-steps 3", "--eval-args", "--limit 2", "--dry-run")
    assert p.returncode == 0, p.stderr
    scripts = {s: out / "slurm" / f"{s}.sbatch" for s in ("generate", "finalize", "pack", "pretrain", "eval")}
    for stage, script in scripts.items():
        assert f"# {stage}: sbatch --parsable" in p.stdout and script.read_text() in p.stdout
        t = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
        assert t.returncode == 0 and "to start at" in t.stderr, f"{stage}: {t.stderr}"
    gen = scripts["generate"].read_text()
    assert "#SBATCH --array=0-1\n" in gen and "#SBATCH --requeue\n" in gen and "#SBATCH --time=00:30:00\n" in gen
    assert "export CHUNKS=8\n" in gen
    assert "--max-steps 3" in scripts["pretrain"].read_text() and "--preset smoke" in scripts["pretrain"].read_text()
    assert "'--dependency=afterok:<generate job id>'" in p.stdout
    # Nothing was submitted or frozen.
    assert not (out / "slurm" / "chain.json").exists() and not (out / "recipe.yaml").exists()


def test_bad_stage_flags_fail_at_submit(out, recipe):
    p = submit(recipe, out, "--pretrain-args", "--no-such-flag 1", "--dry-run")
    assert p.returncode == 2 and "unrecognized arguments: --no-such-flag" in p.stderr and "not valid flags for `corpus pretrain`" in p.stderr


CHAIN_FLAGS = ("--array", "2", "--chunks", "10", "--vocab-size", "400", "--preset", "smoke", "--nproc-per-node", "2",
               "--pretrain-args", "--max-steps 4 --micro-batch 2 --warmup-steps 1 --log-every 1",
               "--eval-args", "--engine transformers --limit 2 --max-new-tokens 16")


def test_whole_chain_with_a_requeued_and_a_signalled_task(out, recipe, reference):
    """generate (array of 2) -> finalize -> tokenizer/pack -> pretrain (srun + torchrun, 2 gloo
    processes) -> eval. Mid-generate, task 0 is requeued (`scontrol requeue`: killed, queued again)
    and task 1 gets the time-limit warning (SIGUSR1 to its batch shell: it finishes its chunk, exits
    75 and requeues itself). Both run again and skip their finished chunks; the corpus is
    `corpus build`'s (uninterrupted), and the model and the report exist."""
    p = submit(recipe, out, *CHAIN_FLAGS)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("submitted job") == 5
    jobs = json.loads((out / "slurm" / "chain.json").read_text())["jobs"]
    task = {k: f"{jobs['generate']}_{k}" for k in (0, 1)}
    act = {0: lambda: subprocess.run(["scontrol", "requeue", task[0]], capture_output=True, text=True),
           1: lambda: signal_batch_shell(task[1], "USR1")}
    deadline = time.monotonic() + 300
    while act:
        for k in list(act):
            done = {c for c in RunDir(out).done_chunks() if c % 2 == k}
            if done:  # task k wrote a chunk: it is mid-run
                assert len(done) < 5, f"task {k} finished before it could be interrupted"
                r = act.pop(k)()
                assert r.returncode == 0, r.stderr
        assert summarize(job_tasks(jobs["generate"]))[0] in ACTIVE, job_tasks(jobs["generate"])
        assert time.monotonic() < deadline, f"tasks {sorted(act)} wrote no chunk within 300 s"
        time.sleep(0.05)
    p = submit(recipe, out, *CHAIN_FLAGS, "--wait", timeout=900)
    logs = "\n".join(f"== {f.name}\n{f.read_text()[-2000:]}" for f in sorted((out / "slurm" / "logs").glob("*.out")))
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}\n{logs}"
    assert "already queued or running" in p.stdout and "submitted" not in p.stdout  # the second submit only waited
    gen = {k: (out / "slurm" / "logs" / f"generate-{task[k]}.out").read_text() for k in (0, 1)}
    for k in (0, 1):
        assert "(restart 0)" in gen[k] and "(restart 1)" in gen[k], gen[k]
    assert "DUE TO JOB REQUEUE" in gen[0]
    assert "stopped by SIGUSR1" in gen[1] and "requeueing this task" in gen[1], gen[1]
    assert RunDir(out).done_chunks() == set(range(10))
    assert not [f for f in (out / "generated").iterdir() if f.name.startswith(".")], "temporary files left behind"
    assert read_corpus(out).equals(reference)
    assert json.loads((out / "stats.json").read_text())["target_tokens"] == 4000
    assert (out / "model" / "final" / "config.json").is_file()
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["results"]["n_problems"] == 2
    # Pretraining ran as 2 processes under srun.
    assert "2 process(es)" in logs
    assert json.loads((out / "model" / "run.json").read_text())["world_size"] == 2
    # status: every stage completed; submitting again submits nothing.
    s = json.loads(corpus_cli("slurm", "status", "--run", str(out), "--json").stdout)
    assert {k: v["state"] for k, v in s["stages"].items()} == dict.fromkeys(["generate", "finalize", "pack", "pretrain", "eval"], "COMPLETED")
    assert s["chunks"]["done"] == s["chunks"]["total"] == 10 and s["corpus_tokens"] >= 4000
    again = submit(recipe, out, *CHAIN_FLAGS)
    assert again.returncode == 0 and "submitted" not in again.stdout and "nothing to submit" in again.stdout, again.stdout


def test_failed_task_cancels_the_rest(out, recipe):
    """Generate tasks that fail (no such model): finalize is cancelled, --wait exits 1, and status
    names each failed task with the error from its log."""
    p = submit(recipe, out, "--array", "2", "--stages", "generate,finalize,pack", "--set", "engine.model=/no/such/model", "--wait")
    assert p.returncode == 1, f"{p.stdout}\n{p.stderr}"
    s = json.loads(corpus_cli("slurm", "status", "--run", str(out), "--json").stdout)
    gen = s["stages"]["generate"]
    assert gen["state"] == "FAILED" and gen["tasks"] == {"FAILED": 2}
    assert sorted(f["task"] for f in gen["failed"]) == ["0", "1"]
    for f in gen["failed"]:
        assert f["exit_code"] == "2:0", f  # corpus generate's exit code for bad input
        assert any("/no/such/model" in line for line in f["log_tail"]), f["log_tail"]
    assert s["stages"]["finalize"]["state"] == "CANCELLED" and s["stages"]["pack"]["state"] == "CANCELLED"
    text = corpus_cli("slurm", "status", "--run", str(out)).stdout
    assert "task 0 FAILED" in text and "task 1 FAILED" in text and "/no/such/model" in text
