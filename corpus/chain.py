"""The whole chain as Slurm batch jobs: what ``corpus slurm submit`` and ``corpus slurm status`` do.

Each stage is one thin sbatch script from ``slurm/`` (it calls the corpus CLI), resolved into
``RUN/slurm/STAGE.sbatch`` with its ``#SBATCH`` lines and variables:

==========  ==================================================================  =====================
stage       job                                                                 done when
==========  ==================================================================  =====================
generate    array over the plan's chunks, one GPU per task, requeued before     every chunk exists
            its time limit (a requeued task skips its finished chunks)
finalize    afterok on the whole array: gate, dedup, decontam, budget           stats.json complete
pack        tokenizer + pack                                                    packed/meta.json
pretrain    srun + torchrun on K nodes, --resume auto, requeued with a          model/final/
            checkpoint before its time limit
eval        HumanEval on model/final                                            eval/report.json
==========  ==================================================================  =====================

Each job depends (``afterok``, ``--kill-on-invalid-dep=yes``) on the previous stage's job, so a
failure cancels what follows. ``RUN/slurm/chain.json`` keeps the settings and the job ids.
Submitting again submits the first stage that is neither done nor queued, and every stage after it.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from corpus.config import ConfigError
from corpus.io import read_marker, write_json, write_text
from corpus.run import RunDir

STAGES = ("generate", "finalize", "pack", "pretrain", "eval")
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
          "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED"}
LOG_TAIL = 15


@dataclass
class Chain:
    """What ``corpus slurm submit`` resolved: the run, its budget and the jobs' resources."""

    run: str
    tokens: int
    chunks: int
    array: int
    stages: list[str]
    python: str = sys.executable
    bin: str = sysconfig.get_path("scripts")  # where pip put the `corpus` command
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    gpus_per_task: int = 0
    cpus: int | None = None
    signal_s: int = 300
    pretrain_nodes: int = 1
    gpus_per_node: int = 0
    nproc_per_node: int = 1
    vocab_size: int = 32000
    pretrain_args: str = ""
    eval_args: str = ""
    sbatch_args: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return Path(self.run) / "slurm"

    def log_pattern(self, stage: str) -> str:
        return str(self.dir / "logs" / (f"{stage}-%A_%a.out" if stage == "generate" else f"{stage}-%j.out"))

    def script(self, stage: str) -> str:
        """The resolved sbatch script of ``stage``."""
        name = Path(self.run).resolve().name
        opts = [f"--job-name=corpus-{stage}-{name}", f"--output={self.log_pattern(stage)}", "--open-mode=append"]
        opts += [f"--{k}={v}" for k, v in (("partition", self.partition), ("account", self.account), ("time", self.time)) if v]
        env = {"RUN": str(Path(self.run).resolve())}
        if stage == "generate":
            opts += [f"--array=0-{min(self.array, self.chunks) - 1}", "--ntasks=1", "--requeue", f"--signal=B:USR1@{self.signal_s}"]
            opts += [f"--gpus-per-task={self.gpus_per_task}"] if self.gpus_per_task else []
            env["CHUNKS"] = str(self.chunks)
        elif stage == "finalize":
            env["TOKENS"] = str(self.tokens)
        elif stage == "pack":
            env["VOCAB_SIZE"] = str(self.vocab_size)
        elif stage == "pretrain":
            opts += [f"--nodes={self.pretrain_nodes}", "--ntasks-per-node=1", "--requeue", f"--signal=B:USR1@{self.signal_s}"]
            opts += [f"--gpus-per-node={self.gpus_per_node}"] if self.gpus_per_node else []
            env |= {"PYTHON": self.python, "NPROC_PER_NODE": str(self.nproc_per_node), "PRETRAIN_ARGS": self.pretrain_args}
        elif stage == "eval":
            opts += [f"--gpus-per-task={self.gpus_per_task}"] if self.gpus_per_task else []
            env["EVAL_ARGS"] = self.eval_args
        opts += [f"--cpus-per-task={self.cpus}"] if self.cpus else []
        opts += list(self.sbatch_args)
        body = (resources.files("corpus.slurm") / f"{stage}.sbatch").read_text().removeprefix("#!/bin/bash\n")
        return "\n".join(
            ["#!/bin/bash", *(f"#SBATCH {o}" for o in opts),
             f"# Resolved by `corpus slurm submit`; the part below the variables is slurm/{stage}.sbatch.",
             # The corpus command of the environment that submitted (a plain executable, not a shell
             # function: `corpus generate &` must make $! the process that gets the signal).
             f'export PATH={shlex.quote(self.bin)}:"$PATH"',
             *(f"export {k}={shlex.quote(v)}" for k, v in env.items()), "", body]
        )

    def sbatch_command(self, stage: str, after: str | None) -> list[str]:
        dep = [f"--dependency=afterok:{after}", "--kill-on-invalid-dep=yes"] if after else []
        return ["sbatch", "--parsable", *dep, str(self.dir / f"{stage}.sbatch")]


# -- what is done --------------------------------------------------------------------------
def stage_done(chain: Chain, stage: str) -> bool:
    run = Path(chain.run)
    if stage == "generate":
        return set(range(chain.chunks)) <= RunDir(run).done_chunks()
    if stage == "finalize":
        stats = read_marker(run / "stats.json")
        return bool(stats and stats.get("complete") and stats.get("target_tokens") == chain.tokens)
    return (run / {"pack": "packed/meta.json", "pretrain": "model/final/config.json", "eval": "eval/report.json"}[stage]).is_file()


# -- Slurm's view ---------------------------------------------------------------------------
def _slurm(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise ConfigError(f"{cmd[0]}: not found; this needs a Slurm client (on one machine: slurm/local-cluster.sh start)")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode:
        raise ConfigError(f"{shlex.join(cmd)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()}")
    return p


def job_tasks(job: str) -> list[dict]:
    """Every task (array element) of ``job`` as Slurm knows it: JobState, ExitCode, ArrayTaskId,
    Reason... from ``scontrol show job`` (sacct for a job that slurmctld has forgotten; [] if neither knows it)."""
    p = _slurm(["scontrol", "show", "job", "-o", job], check=False)
    if p.returncode == 0:
        return [_fields(line) for line in p.stdout.splitlines() if line.strip()]
    if shutil.which("sacct"):
        p = _slurm(["sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State,ExitCode"], check=False)
        rows = []
        for line in p.stdout.splitlines():
            jid, state, code = (line.split("|") + ["", "", ""])[:3]
            task = jid.split("_", 1)[1] if "_" in jid else None
            rows.append({"JobId": jid, "ArrayTaskId": task, "JobState": state.split()[0] if state else "UNKNOWN", "ExitCode": code})
        return rows
    return []


def _fields(line: str) -> dict:
    # KEY=VALUE pairs separated by spaces; a value may hold spaces (Command, Reason), a key never.
    parts = re.split(r" (?=[A-Za-z][\w:/]*=)", line.strip())
    return dict(p.split("=", 1) for p in parts if "=" in p)


def summarize(tasks: list[dict]) -> tuple[str, dict[str, int]]:
    """(the job's state, tasks per state); a pending array's range counts as its number of tasks."""
    counts: dict[str, int] = {}
    for t in tasks:
        n = _range_len(t.get("ArrayTaskId"))
        counts[t.get("JobState", "UNKNOWN")] = counts.get(t.get("JobState", "UNKNOWN"), 0) + n
    if not counts:
        return "UNKNOWN", counts
    for state in ("RUNNING", "REQUEUED", "PENDING", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED", "PREEMPTED"):
        if state in counts:
            return state, counts
    return (next(iter(counts)) if len(counts) == 1 else "MIXED"), counts


def _range_len(spec: str | None) -> int:
    """'3' -> 1, '0-3' -> 4, '0-7%2' -> 8, '1,4-5' -> 3."""
    if not spec or spec == "N/A":
        return 1
    n = 0
    for part in spec.split("%")[0].split(","):
        a, _, b = part.partition("-")
        n += int(b) - int(a) + 1 if b else 1
    return n


# -- submit ---------------------------------------------------------------------------------
def load(run: str | Path) -> dict | None:
    return read_marker(Path(run) / "slurm" / "chain.json")


def submit(chain: Chain, recipe, *, dry_run: bool = False, log=print) -> dict[str, str]:
    """Write the stages' scripts and submit the first stage that is neither done nor queued, and
    every stage after it, chained with afterok; returns {stage: job id} of the chain's live jobs.
    ``dry_run``: print the sbatch commands and scripts instead of submitting."""
    state = load(chain.run) or {}
    jobs: dict[str, str] = dict(state.get("jobs", {}))
    if not dry_run:
        RunDir(chain.run).freeze(recipe)  # refuses a different recipe before anything is queued
    chain.dir.mkdir(parents=True, exist_ok=True)
    (chain.dir / "logs").mkdir(exist_ok=True)
    after: str | None = None
    submitting = False
    live: dict[str, str] = {}
    for stage in chain.stages:
        job = jobs.get(stage)
        if not submitting and not dry_run:
            if job and summarize(job_tasks(job))[0] in ACTIVE:
                log(f"{stage}: job {job} is already queued or running")
                live[stage] = after = job
                continue
            if stage_done(chain, stage):
                log(f"{stage}: done (its output is in {chain.run})")
                continue
        submitting = True
        write_text(chain.dir / f"{stage}.sbatch", chain.script(stage))
        cmd = chain.sbatch_command(stage, after)
        if dry_run:
            log(f"# {stage}: {shlex.join(cmd)}\n" + (chain.dir / f"{stage}.sbatch").read_text())
            after = f"<{stage} job id>"
            continue
        job = _slurm(cmd).stdout.strip().split(";")[0]
        log(f"{stage}: submitted job {job}" + (f" (afterok:{after})" if after else ""))
        live[stage] = jobs[stage] = after = job
        write_json(chain.dir / "chain.json", {"chain": dataclasses.asdict(chain), "jobs": jobs})
    if not dry_run:
        write_json(chain.dir / "chain.json", {"chain": dataclasses.asdict(chain), "jobs": jobs})
        if not live:
            log(f"nothing to submit: every stage of {chain.run} is done")
    return live


# -- status ---------------------------------------------------------------------------------
def status(run: str | Path) -> dict:
    """Each stage's job, state, tasks per state, and for a failed task the tail of its log;
    chunks done of total and tokens so far."""
    state = load(run)
    if state is None:
        raise ConfigError(f"{Path(run) / 'slurm' / 'chain.json'}: no such file (submit the run with corpus slurm submit)")
    chain = Chain(**state["chain"])
    out = {"run": str(run), "stages": {}}
    for stage in chain.stages:
        job = state["jobs"].get(stage)
        tasks = job_tasks(job) if job else []
        st, counts = summarize(tasks) if job else ("NOT SUBMITTED", {})
        done = stage_done(chain, stage)
        if st == "UNKNOWN" and done:
            st = "COMPLETED"
        entry = {"job": job, "state": st, "tasks": counts, "done": done, "failed": []}
        for t in tasks:
            if t.get("JobState") in ACTIVE | {"COMPLETED"}:
                continue
            log = _log_path(chain, stage, job, t)
            entry["failed"].append({
                "task": t.get("ArrayTaskId") if stage == "generate" else None,
                "state": t.get("JobState"), "exit_code": t.get("ExitCode"), "reason": t.get("Reason"),
                "log": str(log), "log_tail": _tail(log),
            })
        out["stages"][stage] = entry
    out["chunks"] = _chunks(chain)
    stats = read_marker(Path(run) / "stats.json")
    if stats:
        out["corpus_tokens"] = stats["tokens"]["corpus"]
    return out


def _log_path(chain: Chain, stage: str, job: str, task: dict) -> Path:
    if stage == "generate":
        return chain.dir / "logs" / f"generate-{task.get('ArrayJobId', job)}_{task.get('ArrayTaskId')}.out"
    return chain.dir / "logs" / f"{stage}-{task.get('JobId', job)}.out"


def _tail(path: Path, n: int = LOG_TAIL) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


def _chunks(chain: Chain) -> dict:
    import pyarrow.parquet as pq  # here: `corpus --help` imports this module for STAGES

    files = {c: p for c, p in RunDir(chain.run).chunks().items() if c < chain.chunks}
    tokens = 0
    for p in files.values():
        col = pq.read_table(p, columns=["completion_tokens"]).column("completion_tokens")
        tokens += sum(x or 0 for x in col.to_pylist())
    return {"done": len(files), "total": chain.chunks, "generated_tokens": tokens}


def format_status(s: dict) -> str:
    lines = [f"run {s['run']}: chunks {s['chunks']['done']:,} of {s['chunks']['total']:,} generated, "
             f"{s['chunks']['generated_tokens']:,} tokens generated so far"
             + (f"; corpus: {s['corpus_tokens']:,} tokens" if "corpus_tokens" in s else "")]
    for stage, e in s["stages"].items():
        tasks = ", ".join(f"{n} {k.lower()}" for k, n in sorted(e["tasks"].items()))
        lines.append(f"  {stage:<9} job {e['job'] or '-':<10} {e['state']:<13}" + (f" tasks: {tasks}" if stage == "generate" and tasks else ""))
        for f in e["failed"]:
            what = f"task {f['task']}" if f["task"] is not None else "job"
            lines.append(f"    {what} {f['state']} (exit {f['exit_code']}, reason {f['reason']}); log {f['log']}:")
            lines += [f"      | {x}" for x in f["log_tail"]] or ["      (log is empty or missing)"]
    return "\n".join(lines)


def wait(run: str | Path, jobs: dict[str, str], *, poll: float = 2.0, log=print) -> bool:
    """Block until none of ``jobs`` is queued or running, printing each change of state; True if
    every job completed."""
    seen: dict[str, str] = {}
    while True:
        states = {stage: summarize(job_tasks(job))[0] for stage, job in jobs.items()}
        for stage, st in states.items():
            if seen.get(stage) != st:
                log(f"{stage}: job {jobs[stage]} {st}")
        seen = states
        if not any(st in ACTIVE for st in states.values()):
            return all(st == "COMPLETED" for st in states.values())
        time.sleep(poll)
