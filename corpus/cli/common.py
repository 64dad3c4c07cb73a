"""Argument types and flags shared by the command groups."""

from __future__ import annotations

import argparse
import os
import re

import yaml


def parse_tokens(value: str) -> int:
    """'1e9', '1_000_000', '500M', '2B', '20k' -> an integer token count."""
    s = value.strip().replace("_", "").replace(",", "")
    m = re.fullmatch(r"(\d+(?:\.\d*)?(?:[eE]\d+)?)([kKmMbBgG]?)", s)
    if not m:
        raise argparse.ArgumentTypeError(
            f"invalid token count {value!r}: expected a number like 1e9, 1_000_000, 500M, 2B or 20k"
        )
    n = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}[m.group(2).lower()]
    if n < 1 or n != int(n):
        raise argparse.ArgumentTypeError(
            f"invalid token count {value!r}: expected a positive whole number like 1e9, 1_000_000, 500M, 2B or 20k"
        )
    return int(n)


def fraction(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"invalid fraction {value!r}: expected a number in (0, 1]")
    return x


def index_range(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+):(\d+)", value.strip())
    if not m or int(m.group(1)) >= int(m.group(2)):
        raise argparse.ArgumentTypeError(f"invalid range {value!r}: expected A:B with A < B, e.g. 0:10")
    return int(m.group(1)), int(m.group(2))


def recipe_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="textbooks", help="built-in recipe name or path to a recipe YAML (default: textbooks)")
    p.add_argument("--seed", type=int, default=None, help="override the recipe's seed")


def _override(value: str) -> tuple[str, object]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid override {value!r}: expected KEY=VALUE, e.g. engine.max_num_seqs=256")
    return key.strip(), yaml.safe_load(raw)


def engine_args(p: argparse.ArgumentParser) -> None:
    """The recipe and teacher-model flags shared by generate and build."""
    recipe_arg(p)
    p.add_argument("--model", help="teacher model: hub id or local directory (vllm), served model name (openai)")
    p.add_argument("--engine", choices=["vllm", "openai"], help="vllm: in process (default); openai: an OpenAI-compatible server")
    p.add_argument("--base-url", help="openai engine: server URL up to /v1 (default http://127.0.0.1:8000/v1)")
    p.add_argument(
        "--set",
        type=_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any recipe key (YAML value), repeatable: --set engine.max_num_seqs=256 --set chunk_size=512",
    )


def recipe_from_args(args):
    """The recipe named by --recipe with whichever of --seed, --model, --engine, --base-url and
    --set the command has applied."""
    from corpus.recipe import load_recipe

    overrides = dict(getattr(args, "set", []))
    for key, flag in (("seed", "seed"), ("engine.model", "model"), ("engine.name", "engine"), ("engine.base_url", "base_url")):
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    return load_recipe(args.recipe, overrides)


def workers_arg(p: argparse.ArgumentParser, what: str = "sandbox, dedup and decontamination processes") -> None:
    p.add_argument("--workers", type=int, default=None, help=f"{what} (default: all {os.cpu_count()} cores)")
