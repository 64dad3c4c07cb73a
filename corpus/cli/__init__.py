"""The ``corpus`` command line: every argparse definition and command of the project lives in
this package (one module per command group); the libraries never import it. Command modules
import the libraries inside their command functions, so ``corpus --help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from corpus.config import ConfigError

# Modules that add sub-commands: each has ``register(subparsers)``.
COMMAND_MODULES: list[str] = [
    "corpus.cli.topics",
    "corpus.cli.plan",
    "corpus.cli.recipe",
    "corpus.cli.smoke",
    "corpus.cli.teacher",
    "corpus.cli.stages",
    "corpus.cli.diversity",
    "corpus.cli.generate",
    "corpus.cli.build",
    "corpus.cli.eval",
    "corpus.cli.pretrain",
    "corpus.cli.slurm",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corpus",
        description="Build textbook-style Python training corpora for small code models: "
        "taxonomies -> balanced prompt plan -> generation -> quality gate -> dedup/decontamination -> budgeted corpus.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show third-party logs and warnings (vLLM, transformers); by default only the project's own lines and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def quiet() -> None:
    """Silence third-party logging and warnings, in this process and the workers it spawns
    (vLLM honours VLLM_LOGGING_LEVEL; errors still show)."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.simplefilter("ignore")
    # vLLM warns on import before its own logging is set up (Python's last-resort handler prints it).
    for name in ("vllm", "transformers", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet()
    try:
        return args.func(args) or 0
    except ConfigError as e:
        print(f"corpus: error: {e}", file=sys.stderr)
        return 2
