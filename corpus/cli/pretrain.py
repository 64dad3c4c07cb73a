"""``corpus tokenizer``, ``corpus pack`` and ``corpus pretrain``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

from corpus.cli.common import parse_tokens


def cmd_tokenizer(args) -> int:
    from pretrain.tokenizer import train_tokenizer

    print(json.dumps(train_tokenizer(args.corpus, args.vocab_size, args.out, args.min_frequency)))
    return 0


def cmd_pack(args) -> int:
    from pretrain.pack import pack

    meta = pack(args.corpus, args.tokenizer, args.out, args.val_fraction, format=args.format)
    keys = ("format", "tokens", "documents", "solution_tokens", "dtype", "tokenizer_hash", "corpus_hash")
    print(json.dumps({k: meta[k] for k in keys if k in meta}))
    return 0


def cmd_pretrain(args) -> int:
    from corpus.config import Located, build
    from pretrain.train import TrainArgs, train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainArgs)}
    return train(build(TrainArgs, values, Located(values, {}, "command line")))


def _train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainArgs field; help text from the field's docstring."""
    from pretrain import train as t

    docs = _field_docs(t.TrainArgs)
    hints = typing.get_type_hints(t.TrainArgs)
    for f in dataclasses.fields(t.TrainArgs):
        flag = "--" + f.name.replace("_", "-")
        tp, default = hints[f.name], f.default
        help_ = docs.get(f.name, "") + ("" if default is dataclasses.MISSING else f" (default: {default})")
        if tp is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_)
        elif f.name == "max_tokens":
            p.add_argument(flag, type=parse_tokens, default=default, help=help_ + "; accepts 1e9, 500M")
        elif typing.get_origin(tp) is typing.Literal:
            p.add_argument(flag, choices=typing.get_args(tp), default=default, help=help_)
        else:
            base = next((x for x in typing.get_args(tp) if x is not type(None)), tp) if typing.get_args(tp) else tp
            p.add_argument(flag, type=base, default=None if default is dataclasses.MISSING else default,
                           required=default is dataclasses.MISSING, help=help_)


def _field_docs(cls) -> dict[str, str]:
    """The string literal under each dataclass field (the litgpt convention)."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for prev, node in zip(body, body[1:]):
        if isinstance(prev, ast.AnnAssign) and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docs[prev.target.id] = node.value.value
    return docs


def register(sub) -> None:
    from pretrain.pack import FORMATS

    p = sub.add_parser(
        "tokenizer",
        help="train a byte-level BPE tokenizer on a corpus",
        description="Train a byte-level BPE tokenizer (with an <|endoftext|> token, id 0) on the `text` column of "
        "the corpus's Parquet shards, streamed; saved as a Hugging Face tokenizer (AutoTokenizer.from_pretrained(OUT)).",
    )
    p.add_argument("--corpus", required=True, help="run dir or its corpus/ dir holding part-*.parquet")
    p.add_argument("--vocab-size", type=int, required=True, help="vocabulary size including the 256 bytes and <|endoftext|>")
    p.add_argument("--min-frequency", type=int, default=2, help="merge only pairs seen this often (default 2)")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_tokenizer)

    p = sub.add_parser(
        "pack",
        help="tokenize a corpus into train.bin / val.bin",
        description="Tokenize every document (in parallel), append <|endoftext|>, and write flat token files "
        "OUT/train.bin and OUT/val.bin (uint16 when the vocabulary fits, else uint32), OUT/meta.json (tokens, "
        "documents, tokenizer and corpus hashes; written last) and a copy of the tokenizer in OUT/tokenizer/. "
        "A document is in validation when xxh64(id) / 2**64 < --val-fraction. Deterministic. "
        "--format exercises (finetuning data, phi-1's CodeExercises): each row's `statement` tokens, then its "
        "`solution` tokens, then <|endoftext|>, with OUT/train.mask.bin and OUT/val.mask.bin (uint8 per token: "
        "1 = solution or <|endoftext|>, the tokens the loss is on; 0 = statement).",
    )
    p.add_argument("--corpus", required=True, help="run dir or its corpus/ dir holding part-*.parquet")
    p.add_argument("--tokenizer", required=True, help="directory written by `corpus tokenizer`")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--val-fraction", type=float, default=0.01, help="share of documents for validation (default 0.01)")
    p.add_argument("--format", choices=list(FORMATS), default="text",
                   help="text: the `text` column; exercises: `statement` + `solution` with a loss mask (default text)")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser(
        "pretrain",
        help="train a Llama-style model on packed tokens (DDP under torchrun)",
        description="Plain PyTorch pretraining: AdamW (beta2 0.95, weight decay off for norms), warmup + cosine to "
        "10%, clipping, accumulation to --batch-tokens, bf16 + torch.compile on GPU, float32 on CPU. "
        "Multi-GPU/multi-node: `torchrun --nproc-per-node N -m corpus pretrain ...` (NCCL; gloo on CPU). "
        "Logs OUT/train_log.jsonl and OUT/tb/; checkpoints OUT/checkpoints/step-NNNNNNNN/ (atomic, COMPLETE "
        "marker last); exports OUT/final/ with save_pretrained + tokenizer. Exit codes: 0 done, 2 bad input, "
        "75 stopped early by SIGUSR1/SIGTERM/--stop-at after writing a checkpoint (rerun with --resume auto). "
        "Finetuning: --init-from MODEL_DIR (an exported final/, same tokenizer as --data) instead of a fresh init; "
        "on data packed with --format exercises the loss (and the logged loss/val_loss) is over solution tokens only "
        "and training windows start at document starts.",
    )
    _train_flags(p)
    p.set_defaults(func=cmd_pretrain)
