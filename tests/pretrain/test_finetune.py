"""phi-1's finetuning stage: exercise records packed with a loss mask, then `corpus pretrain --init-from`
the smoke run's export, with the loss on solution tokens only."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch

from corpus.config import ConfigError
from corpus.io import write_parquet
from pretrain.pack import is_val, pack
from pretrain.train import EXIT_INTERRUPTED, batch_offsets, doc_starts

T = 64  # the tiny model's seq_len
# The docstring names the operation, the solution applies it: learnable from the statement alone.
OPS = [("add", "sum", "+"), ("sub", "difference", "-"), ("mul", "product", "*"), ("max", "larger", None)]


def make_exercises(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        name, word, op = OPS[i % len(OPS)]
        statement = f'def {name}_{i}(a: int, b: int) -> int:\n    """Return the {word} of a and b."""\n'
        solution = f"    return a {op} b\n" if op else "    return a if a > b else b\n"
        expected = {"+": 5, "-": -1, "*": 6, None: 3}[op]
        rows.append({"id": f"ex-{i}", "text": statement + solution, "statement": statement, "solution": solution,
                     "tests": f"assert {name}_{i}(2, 3) == {expected}\n"})
    return rows


@pytest.fixture(scope="module")
def exercises(tmp_path_factory):
    rows = make_exercises(64)
    run = tmp_path_factory.mktemp("runs") / "exercises"
    write_parquet(pa.Table.from_pylist(rows), run / "corpus" / "part-00000.parquet")
    return run, rows


@pytest.fixture(scope="module")
def packed_ex(tmp_path_factory, exercises, tok_dir):
    """The exercises packed through the CLI with the smoke run's tokenizer."""
    from corpus.cli import main

    out = tmp_path_factory.mktemp("packed_ex")
    assert main(["pack", "--corpus", str(exercises[0]), "--tokenizer", str(tok_dir), "--out", str(out),
                 "--val-fraction", "0.2", "--format", "exercises"]) == 0
    return out


def _docs(tokens, mask, eos):
    cut = np.flatnonzero(tokens == eos) + 1
    return list(zip(np.split(tokens, cut)[:-1], np.split(mask, cut)[:-1]))


def test_mask_marks_exactly_the_solution(packed_ex, exercises, tok_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    meta = json.loads((packed_ex / "meta.json").read_text())
    assert meta["format"] == "exercises" and meta["eos_id"] == 0
    rows = exercises[1]
    for split in ("train", "val"):
        tokens = np.fromfile(packed_ex / f"{split}.bin", dtype=np.uint16)
        mask = np.fromfile(packed_ex / f"{split}.mask.bin", dtype=np.uint8)
        assert len(tokens) == len(mask) == meta["tokens"][split] and mask.sum() == meta["solution_tokens"][split]
        want = [r for r in rows if is_val(r["id"], 0.2) == (split == "val")]
        docs = _docs(tokens, mask, 0)
        assert len(docs) == len(want) == meta["documents"][split]
        for (ids, m), r in zip(docs, want):
            k = int((m == 0).sum())
            assert (m[:k] == 0).all() and (m[k:] == 1).all()  # statement first, then solution + end-of-text
            assert tok.decode(ids[:k].tolist(), skip_special_tokens=False) == r["statement"]
            assert tok.decode(ids[k:].tolist(), skip_special_tokens=False) == r["solution"] + "<|endoftext|>"
    assert 6 <= meta["documents"]["val"] <= 22  # ~20% of 64


def test_pack_errors(tmp_path, corpus_dir, tok_dir, packed_ex, capsys):
    from corpus.cli import main

    # The pretraining corpus has the exercise columns (every record has them) but no exercise in them.
    with pytest.raises(ConfigError, match=r"no document has both a statement and a solution: --format exercises packs a corpus built with gate.exercise"):
        pack(corpus_dir, tok_dir, tmp_path / "o", format="exercises")
    assert not (tmp_path / "o" / "meta.json").exists() and not list((tmp_path / "o").glob("*.bin"))
    # Shards made elsewhere without the columns: named, with the file.
    other = tmp_path / "other"
    (other / "corpus").mkdir(parents=True)
    write_parquet(pa.table({"id": ["a"], "text": ["x = 1\n"]}), other / "corpus" / "part-00000.parquet")
    with pytest.raises(ConfigError, match=r"part-00000.parquet: no 'statement' or 'solution' column for --format exercises"):
        pack(other, tok_dir, tmp_path / "o2", format="exercises")
    # The default format is unchanged: no mask, and a repack as text drops an older pack's masks.
    out = tmp_path / "p"
    shutil.copytree(packed_ex, out)
    assert main(["pack", "--corpus", str(corpus_dir), "--tokenizer", str(tok_dir), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "text"
    assert not list(out.glob("*.mask.bin"))


def _loss(model, tokens, mask, offsets) -> tuple[float, float]:
    """Mean cross-entropy over the solution targets, and over every target, of these windows."""
    x = torch.from_numpy(np.stack([tokens[o : o + T + 1] for o in offsets]).astype(np.int64))
    m = torch.from_numpy(np.stack([mask[o + 1 : o + T + 1] for o in offsets])).bool()
    with torch.no_grad():
        logits = model(input_ids=x[:, :-1]).logits
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
    return ce[m].mean().item(), ce.mean().item()


def test_finetune_on_solutions(tmp_path, smoke_run, packed_ex, tiny_args, train1, read_log):
    from transformers import AutoModelForCausalLM

    init = smoke_run / "final"
    kw = dict(data=str(packed_ex), model_config=None, init_from=str(init), max_steps=40, eval_every=10, warmup_steps=5, lr=2e-3)
    assert train1(tiny_args(tmp_path / "full", **kw)) == 0
    log = read_log(tmp_path / "full")

    tokens = {s: np.fromfile(packed_ex / f"{s}.bin", dtype=np.uint16) for s in ("train", "val")}
    mask = {s: np.fromfile(packed_ex / f"{s}.mask.bin", dtype=np.uint8) for s in ("train", "val")}
    load = lambda d: AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()  # noqa: E731
    before, after = load(init), load(tmp_path / "full" / "final")

    # Step 1's logged loss (taken before the first update) is the init model's mean over the solution
    # targets of step 1's windows (document starts): the prompt targets carry no loss.
    offs = batch_offsets(len(tokens["train"]), T, 8, 1337, 0, "random", doc_starts(tokens["train"], 0, T))
    assert all(tokens["train"][o - 1] == 0 for o in offs if o)  # each window opens a document
    solution, every = _loss(before, tokens["train"], mask["train"], offs)
    print(f"finetune: step-1 loss {log[0]['loss']:.5f}; recomputed over solution targets {solution:.5f}, "
          f"over every target {every:.5f}")
    assert log[0]["step"] == 1 and abs(log[0]["loss"] - solution) < 1e-5
    assert abs(log[0]["loss"] - every) > 1e-2  # far outside that tolerance: not the all-token mean

    # Validation: the same fixed windows every time, solution tokens only; it falls with training.
    starts = doc_starts(tokens["val"], 0, T)
    val0, _ = _loss(before, tokens["val"], mask["val"], starts)
    vals = [e["val_loss"] for e in log if "val_loss" in e]
    assert abs(_loss(after, tokens["val"], mask["val"], starts)[0] - vals[-1]) < 1e-4
    print(f"finetune: val loss on solution tokens {val0:.3f} (init) -> {vals} (steps 10-40); "
          f"train loss {log[0]['loss']:.3f} -> {[e for e in log if 'loss' in e][-1]['loss']:.3f}")
    assert vals[-1] < vals[0] < val0 and vals[-1] < 0.5 * val0

    # Resume: stopped after step 15 and continued, the same curve as the unbroken run.
    assert train1(tiny_args(tmp_path / "cut", stop_at=15, **kw)) == EXIT_INTERRUPTED
    assert train1(tiny_args(tmp_path / "cut", resume="auto", **kw)) == 0
    cut = read_log(tmp_path / "cut")
    assert [e["step"] for e in cut] == [e["step"] for e in log]
    worst = max(abs(a.get("loss", a.get("val_loss")) - b.get("loss", b.get("val_loss"))) for a, b in zip(log, cut))
    assert worst <= 1e-6


def test_init_from_errors(tmp_path, smoke_run, packed_ex, exercises, tiny_yaml, capsys):
    from corpus.cli import main
    from pretrain.tokenizer import train_tokenizer

    base = ["pretrain", "--data", str(packed_ex), "--out", str(tmp_path / "o"), "--max-steps", "1"]
    assert main(base + ["--init-from", str(smoke_run / "final"), "--model-config", str(tiny_yaml)]) == 2
    assert "model_config: the model's shape comes from --init-from" in capsys.readouterr().err
    assert main(base + ["--init-from", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    # Exercises packed with another tokenizer than the model's: refused before training.
    train_tokenizer(exercises[0], 300, tmp_path / "tok")
    pack(exercises[0], tmp_path / "tok", tmp_path / "other", val_fraction=0.2, format="exercises")
    other = ["pretrain", "--data", str(tmp_path / "other"), "--out", str(tmp_path / "o"), "--max-steps", "1"]
    assert main(other + ["--init-from", str(smoke_run / "final")]) == 2
    err = capsys.readouterr().err
    assert "differs from the packed data's" in err and "(vocabulary 512, end-of-text id 0)" in err
    assert not (tmp_path / "o").exists()
