"""The ablation: does forcing every prompt onto a different combination of entities make the corpus
diverse? Four arms, one teacher, one gate, one token budget each:

    recipe      the recipe's plan, as shipped (leaf x audience x every axis)
    naive       one fixed prompt ("Write a Python textbook extract with code."); only the request seed varies
    topic       the leaf (and its branch) varies, nothing else: no axis, no audience in the prompt
    opening     the recipe with its ``opening`` axis (how the extract begins) flipped: removed when the
                recipe has one, else textbooks.yaml's added (textbooks-tiny has none: measured here, it
                cost the 135M teacher acceptance; its template still uses the axis when present)

Each arm is a recipe override of ``--recipe`` (templates and axes only: sampling, engine, gate,
dedup, decontamination and the counting tokenizer stay the base's), built with ``corpus build``'s
runner into OUT/ARM/ until it holds ``--tokens`` or has used ``--max-prompts`` (then the arm keeps
what it has and is marked "budget not reached"). One vLLM engine serves every arm. Then, per arm: a
byte-level BPE tokenizer (``--vocab-size``) trained on that arm's corpus, the same model preset
trained for the same ``--train-tokens`` (the corpus repeats as needed; same seed), and its bits per
byte on held-out real Python: a fixed sample (seed 0) of ``--heldout-files`` ``.py`` files of the
running interpreter's standard library (no test/, idlelib/, site-packages, nothing over 20 KB),
concatenated. Bits per byte does not depend on each arm's tokenizer.

Prints a Markdown table, metrics per arm side by side (counts, acceptance, top rejections, the
build's ``text_diversity`` metrics, training loss, bits per byte); writes it to OUT/ablation.md and
everything to OUT/ablation.json. Rerunning with the same OUT reuses the generated chunks and every
finished training.

    PYTHONPATH=$PWD .venv/bin/python bench/ablation.py                      # the embedded teacher, ~45 min (measured 2026-12-02)
    PYTHONPATH=$PWD .venv/bin/python bench/ablation.py --model DIR --recipe R --arms recipe,naive

Defaults, for the embedded teacher on 2 CPU cores (textbooks-tiny keeps 4-6% of prompts at ~140
cl100k tokens each, 0.4-0.5 prompts/s): ``--tokens 1200`` is what the recipe's plan
reaches in about 256 prompts; ``--max-prompts 320`` (5 chunks of 64, ~11 min) caps every arm, so the
four builds take at most ~45 min. Training: the smoke preset (~3.6M parameters), ``--train-tokens
131072`` (64 steps of 2,048) ~1.5 min per arm; bits per byte over ~265 KB of stdlib source (stride
half a context) ~1 min per arm. Total ≤60 min. These corpora are tiny: the diversity metrics are the
finding here; the bits per byte of models trained on ~1,200 tokens mostly measure the machinery,
until a GPU teacher gives each arm a real budget.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import random
import shutil
import sys
import sysconfig
import time
from pathlib import Path

# bench/ holds a pretrain.py: drop this directory from the path so `pretrain` is the package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import jinja2
import jinja2.meta

from corpus.checks import ACCEPTED
from corpus.cli.common import parse_tokens
from corpus.config import ConfigError
from corpus.engines import Engine, make_engine
from corpus.io import write_json, write_text
from corpus.recipe import Recipe, load_recipe

ARMS = ("recipe", "naive", "topic", "opening")
NAIVE_PROMPT = "Write a Python textbook extract with code."
TOPIC_PROMPT = "Write a Python textbook extract with code about {{ leaf }} ({{ branch }})."
HELDOUT_SEED = 0  # fixed: every run, whatever --seed, is measured on the same held-out text
HELDOUT_MAX_BYTES = 20_000
HELDOUT_SKIP = {"test", "tests", "idlelib", "site-packages"}
# The text_diversity metrics (corpus.diversity), in table order; any other key it has follows them.
METRICS = ("documents", "distinct_1", "distinct_2", "distinct_3", "distinct_4", "opener_top_share", "openers_top10",
           "compression_ratio", "near_duplicate_rate", "pairwise_jaccard", "function_names_distinct",
           "identical_snippet_share", "imports_distinct")
LR = 2e-3  # a short run of a small model: 6e-4 (the loop's default, sized for long runs) barely moves it in 64 steps


class CapReached(Exception):
    """The arm used its --max-prompts without reaching --tokens."""


# -- the arms ----------------------------------------------------------------------------------
def arm_overrides(base: Recipe, model: str, seed: int) -> dict[str, dict]:
    """Each arm as overrides of the base recipe: only templates and axes differ."""
    system = base.templates.system
    if system and jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(system)):
        raise ConfigError(f"recipe {base.name!r}: its system template uses variables, so the naive arm's prompt would vary")
    common = {"engine.model": model, "seed": seed}
    # No axis (their labels would lie) and no outline stage (it would vary with the leaf).
    plain = {**{f"axes.{a}": None for a in base.axes}, "templates.outline": None}
    return {
        "recipe": common,
        "naive": {**common, **plain, "templates.extract": NAIVE_PROMPT},
        "topic": {**common, **plain, "templates.extract": TOPIC_PROMPT},
        "opening": {**common, "axes.opening": None if "opening" in base.axes else load_recipe("textbooks").axes["opening"]},
    }


class LazyEngine(Engine):
    """Starts the real engine at the first request: a rerun whose arms are all built starts none."""

    def __init__(self, cfg):
        self.cfg, self.name, self.model, self.real = cfg, cfg.name, cfg.model, None

    def generate(self, requests):
        if self.real is None:
            self.real = make_engine(self.cfg)
        return self.real.generate(requests)

    def close(self):
        if self.real is not None:
            self.real.close()


def build_arm(recipe: Recipe, out: Path, tokens: int, cap: int, engine: Engine) -> tuple[dict | None, dict]:
    """Build one arm: until ``tokens`` or ``cap`` prompts; then keep what it has. Returns the build's
    stats (None when nothing was kept) and a summary over every prompt the arm used: a finalize
    over a capped arm stops at its last kept document, so its stats leave out the chunks after it."""
    from corpus.cli.build import Display
    from corpus.runner import LowYield, build

    display, last = Display(f"build {out.name}", tokens), {}

    def progress(tally, c, done):
        display(tally, c, done)
        last["tally"] = tally
        if not done and tally.prompts >= cap:
            raise CapReached()

    stats = None
    try:
        # max_prompts=inf: the runner's own early stop (LowYield at the measured yield) is off, so
        # every arm that misses the budget has spent the same cap; the callback enforces it.
        stats = build(recipe, out, tokens, max_prompts=math.inf, engine=engine, progress=progress)
    except (CapReached, LowYield):
        pass
    finally:
        display.close()
    t = last["tally"]
    gate = t.gate
    summary = {"status": "complete" if stats else f"budget not reached ({t.kept_tokens:,} of {tokens:,} tokens)",
               "prompts": t.prompts, "kept_docs": t.kept_docs, "tokens": t.kept_tokens, "acceptance": t.acceptance,
               "gate_acceptance": gate.get(ACCEPTED, 0) / max(1, t.prompts),
               "tokens_per_kept_doc": t.kept_tokens / t.kept_docs if t.kept_docs else None,
               "rejections": {k: v for k, v in gate.most_common() if k != ACCEPTED and v}}
    if stats is None and t.kept_tokens:
        # Finalize on the chunks there are, with the budget they hold: every clean document is kept.
        stats = build(recipe, out, t.kept_tokens, generate=False, max_prompts=math.inf)
    return stats, summary


def generated_metrics(run: Path, n: int) -> dict:
    """``corpus.diversity`` metrics of every text generated for the first ``n`` prompts of a run."""
    import pyarrow.parquet as pq

    from corpus.diversity import measure

    texts = []
    for chunk in sorted((run / "generated").glob("chunk-*.parquet")):
        texts += pq.read_table(chunk, columns=["text"]).column("text").to_pylist()
        if len(texts) >= n:
            break
    return {"prompts": n, **measure(t for t in texts[:n] if t is not None)}


# -- held-out text and bits per byte -----------------------------------------------------------
def heldout_files(n: int, seed: int = HELDOUT_SEED) -> tuple[Path, list[str]]:
    """A fixed sample of the interpreter's own standard-library sources (sorted list, then sampled)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if HELDOUT_SKIP & set(rel.parts[:-1]) or p.stat().st_size > HELDOUT_MAX_BYTES:
            continue
        files.append(rel.as_posix())
    return root, random.Random(seed).sample(files, min(n, len(files)))


def bits_per_byte(model_dir: str | Path, text: str, *, stride: int | None = None, batch: int = 8) -> dict:
    """Bits per UTF-8 byte of ``text`` under a causal LM (a transformers directory with its tokenizer):
    sum of every token's NLL (nats) / (ln 2 x bytes). The text starts after an end-of-text token (as
    every training document does); windows of the model's context every ``stride`` tokens (default
    half a context), each token scored once, with at least context - stride tokens before it once
    the first window is past. Independent of the tokenizer: the same text, the same bytes."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    T = model.config.max_position_embeddings
    stride = stride or max(1, T // 2)
    ids = torch.tensor([tok.eos_token_id] + tok(text, add_special_tokens=False)["input_ids"])
    last = len(ids) - 1  # targets are ids[1..last]
    # Window w: inputs ids[b:e], targets ids[b+1:e+1]; it scores the targets after the previous window's.
    windows, b, prev = [], 0, 0
    while prev < last:
        e = min(b + T, last)
        windows.append((b, e, prev))
        prev, b = e, b + stride
    nll = 0.0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            group = windows[i : i + batch]
            for n in sorted({e - b for b, e, _ in group}):  # equal lengths batch together (only the last differs)
                same = [w for w in group if w[1] - w[0] == n]
                x = torch.stack([ids[b:e] for b, e, _ in same])
                y = torch.stack([ids[b + 1 : e + 1] for b, e, _ in same])
                logp = F.cross_entropy(model(input_ids=x).logits.float().transpose(1, 2), y, reduction="none")
                for row, (b, e, p) in zip(logp, same):
                    nll += row[p - b :].double().sum().item()  # targets b+1+k > p  <=>  k >= p - b
    n_bytes = len(text.encode("utf-8"))
    return {"bits_per_byte": nll / (math.log(2) * n_bytes), "tokens": last, "bytes": n_bytes, "windows": len(windows),
            "context": T, "stride": stride}


# -- training ----------------------------------------------------------------------------------
def train_arm(run: Path, heldout: str, heldout_key: str, a) -> dict:
    """Tokenizer, pack, train and bits per byte for one arm's corpus; reused when nothing changed."""
    from pretrain.pack import pack
    from pretrain.tokenizer import corpus_hash, corpus_shards, train_tokenizer
    from pretrain.train import TrainArgs, train

    key = {"corpus_hash": corpus_hash(corpus_shards(run / "corpus")), "preset": a.preset, "vocab_size": a.vocab_size,
           "train_tokens": a.train_tokens, "seed": a.seed, "lr": LR, "heldout": heldout_key}
    done = run / "ablation-train.json"
    if done.is_file() and json.loads(done.read_text())["key"] == key:
        return json.loads(done.read_text())["result"]
    for d in ("tokenizer", "packed", "lm"):
        shutil.rmtree(run / d, ignore_errors=True)
    t0 = time.perf_counter()
    tok = train_tokenizer(run / "corpus", a.vocab_size, run / "tokenizer")
    meta = pack(run / "corpus", run / "tokenizer", run / "packed", val_fraction=0.0)  # held-out text is the stdlib
    from pretrain.model import resolve

    T = resolve(a.preset).seq_len
    if meta["tokens"]["train"] < T + 2:
        return {"skipped": f"{meta['tokens']['train']:,} tokens: less than one training sequence of {T + 1}"}
    micro = 8
    steps = math.ceil(a.train_tokens / (micro * T))
    rc = train(TrainArgs(data=str(run / "packed"), out=str(run / "lm"), preset=a.preset, max_tokens=a.train_tokens,
                         batch_tokens=micro * T, micro_batch=micro, lr=LR, warmup_steps=max(1, steps // 10),
                         seed=a.seed, log_every=max(1, steps // 8), keep=1))
    if rc != 0:
        raise RuntimeError(f"{run / 'lm'}: training stopped early (exit {rc})")
    losses = [e["loss"] for e in map(json.loads, (run / "lm" / "train_log.jsonl").read_text().splitlines()) if "loss" in e]
    t1 = time.perf_counter()
    bpb = bits_per_byte(run / "lm" / "final", heldout)
    result = {"vocab_size": tok["vocab_size"], "corpus_train_tokens": meta["tokens"]["train"],
              "epochs": a.train_tokens / max(1, meta["tokens"]["train"]), "steps": steps, "first_loss": losses[0],
              "final_loss": losses[-1], "train_seconds": round(t1 - t0, 1), "bpb_seconds": round(time.perf_counter() - t1, 1), **bpb}
    write_json(done, {"key": key, "result": result})
    return result


# -- the table ---------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)):
        return "; ".join(_fmt(x) if not isinstance(x, str) else repr(x)[:40] for x in v[:3]) + (" …" if len(v) > 3 else "")
    return str(v)


def _cell(v) -> str:
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def table(results: dict[str, dict], tokens: int) -> str:
    arms = list(results)
    rows: list[tuple[str, list]] = []

    def row(name, fn):
        rows.append((name, [fn(results[a]) for a in arms]))

    def get(r, *path):
        for p in path:
            r = r.get(p) if isinstance(r, dict) else None
        return r

    row("status", lambda r: r["summary"]["status"])
    row("build minutes (this run)", lambda r: round(r["build_seconds"] / 60, 1))
    row("prompts", lambda r: r["summary"]["prompts"])
    row("kept docs", lambda r: r["summary"]["kept_docs"])
    row("acceptance (gate, dedup, decontam)", lambda r: f"{r['summary']['acceptance']:.1%}")
    row("gate acceptance", lambda r: f"{r['summary']['gate_acceptance']:.1%}")
    row(f"tokens (budget {tokens:,})", lambda r: r["summary"]["tokens"])
    row("tokens per kept doc", lambda r: r["summary"]["tokens_per_kept_doc"])
    row("top rejections", lambda r: "; ".join(f"{k} {v}" for k, v in list(r["summary"]["rejections"].items())[:3]) or None)
    row("leaves covered", lambda r: get(r, "stats", "diversity", "leaves_covered"))
    corpus = {a: get(results[a], "stats", "text_diversity", "corpus") or {} for a in arms}
    extra = sorted({k for m in corpus.values() for k in m} - set(METRICS))
    for k in (*METRICS, *extra):
        rows.append((k, [corpus[a].get(k) for a in arms]))
    gen = {a: results[a].get("generated") or {} for a in arms}
    n = next(iter(gen.values())).get("prompts")
    for k in ("documents", "distinct_1", "distinct_2", "distinct_3", "distinct_4", "opener_top_share", "openers_top10",
              "compression_ratio", "pairwise_jaccard", "function_names_distinct", "identical_snippet_share"):
        rows.append((f"all generated, first {n} prompts: {k}", [gen[a].get(k) for a in arms]))
    row("tokenizer vocab", lambda r: get(r, "train", "vocab_size"))
    row("epochs over the corpus", lambda r: get(r, "train", "epochs"))
    row("train loss (first → last)", lambda r: f"{r['train']['first_loss']:.3f} → {r['train']['final_loss']:.3f}"
        if "final_loss" in r.get("train", {}) else get(r, "train", "skipped"))
    row("held-out bits per byte", lambda r: get(r, "train", "bits_per_byte"))
    lines = ["| metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    lines += ["| " + name + " | " + " | ".join(_cell(v) for v in vals) + " |" for name, vals in rows]
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="teacher: a model directory or hub id (default: the embedded teacher in runs/teacher, written there when missing)")
    p.add_argument("--recipe", default="textbooks-tiny", help="the base recipe of every arm (default: textbooks-tiny)")
    p.add_argument("--out", default="runs/ablation", help="one run directory per arm under it, and the report (default: runs/ablation)")
    p.add_argument("--tokens", type=parse_tokens, default=1200, help="token budget of every arm, counted by the recipe's tokenizer (default: 1200)")
    p.add_argument("--max-prompts", type=int, default=320, help="prompts per arm at most (default: 320 = 5 chunks of textbooks-tiny)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of arms (default: {','.join(ARMS)})")
    p.add_argument("--train-tokens", type=parse_tokens, default=131072, help="training tokens per arm's model (default: 131072 = 64 steps of 2,048)")
    p.add_argument("--preset", default="smoke", help="model preset trained on every arm (default: smoke)")
    p.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary of every arm's tokenizer (default: 1024)")
    p.add_argument("--heldout-files", type=int, default=40, help="stdlib .py files in the held-out text (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="the recipe seed (plan and request seeds) and the training seed (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training and scoring (default: 1: on this shared "
                   "2-core machine 2 threads were up to 30x slower under contention, bench/pretrain.py)")
    p.add_argument("-v", "--verbose", action="store_true", help="show vLLM's and transformers' logs")
    a = p.parse_args(argv)
    if not a.verbose:
        from corpus.cli import quiet

        quiet()
    arms = [x.strip() for x in a.arms.split(",") if x.strip()]
    if unknown := [x for x in arms if x not in ARMS]:
        p.error(f"--arms: unknown arm(s) {', '.join(unknown)} (expected some of: {', '.join(ARMS)})")

    out = Path(a.out)
    model = a.model
    if model is None:
        from corpus.teacher import write_teacher

        model = "runs/teacher"
        if write_teacher(model):
            print(f"ablation: wrote the embedded teacher to {model}", file=sys.stderr)
    base = load_recipe(a.recipe)
    overrides = arm_overrides(base, model, a.seed)
    recipes = {arm: load_recipe(a.recipe, overrides[arm]) for arm in arms}
    engines = {json.dumps(r.engine.__dict__, sort_keys=True, default=str) for r in recipes.values()}
    assert len(engines) == 1, "every arm must share the engine settings"

    root, files = heldout_files(a.heldout_files)
    heldout = "\n\n".join((root / f).read_text(encoding="utf-8") for f in files)
    heldout_key = hashlib.sha256(heldout.encode()).hexdigest()[:16]

    # Builds first, all on one engine, which is closed before training needs the memory.
    results: dict[str, dict] = {}
    engine = LazyEngine(next(iter(recipes.values())).engine)
    try:
        for arm, recipe in recipes.items():
            t0 = time.perf_counter()
            stats, summary = build_arm(recipe, out / arm, a.tokens, a.max_prompts, engine)
            results[arm] = {"overrides": overrides[arm], "recipe_hash": recipe.hash, "summary": summary, "stats": stats,
                            "build_seconds": round(time.perf_counter() - t0, 1)}
            print(f"ablation: {arm}: {summary['status']}, {results[arm]['build_seconds']:.0f} s", file=sys.stderr)
    finally:
        engine.close()
    # The corpora hold a handful of documents each; what the teacher wrote for the first N prompts of
    # every arm (N: the fewest any arm used), gate aside, measures the prompts' effect with more text.
    first = min(r["summary"]["prompts"] for r in results.values())
    for arm, r in results.items():
        r["generated"] = generated_metrics(out / arm, first)

    import torch

    torch.set_num_threads(a.threads)
    for arm, r in results.items():
        if r["stats"] is None:
            print(f"ablation: {arm}: no corpus, no model", file=sys.stderr)
            continue
        r["train"] = train_arm(out / arm, heldout, heldout_key, a)
        if "skipped" in r["train"]:
            print(f"ablation: {arm}: no model: {r['train']['skipped']}", file=sys.stderr)
            continue
        print(f"ablation: {arm}: loss {r['train']['final_loss']:.3f}, {r['train']['bits_per_byte']:.3f} bits per byte "
              f"({r['train']['train_seconds']:.0f} s training, {r['train']['bpb_seconds']:.0f} s scoring)", file=sys.stderr)

    md = table(results, a.tokens)
    head = (f"# Ablation: {base.name}, teacher {model}, {a.tokens:,} tokens per arm (at most {a.max_prompts:,} prompts), "
            f"{a.preset} model, {a.train_tokens:,} training tokens, held-out: {len(files)} stdlib files "
            f"(Python {platform.python_version()}, {len(heldout.encode()):,} bytes)\n\n")
    print(md)
    for arm, r in results.items():
        if "final_loss" in r.get("train", {}):
            print(f"{arm}: final training loss {r['train']['final_loss']:.4f}")
    write_text(out / "ablation.md", head + md)
    write_json(out / "ablation.json", {
        "settings": {k: v for k, v in vars(a).items()} | {"model": model, "lr": LR, "naive_prompt": NAIVE_PROMPT, "topic_prompt": TOPIC_PROMPT},
        "heldout": {"python": platform.python_version(), "stdlib": str(root), "seed": HELDOUT_SEED, "files": files,
                    "bytes": len(heldout.encode()), "sha256": heldout_key},
        "arms": results,
    })
    print(f"ablation: {out / 'ablation.md'}, {out / 'ablation.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
