"""``corpus smoke-model DIR``: a tiny random-weight model for offline CPU trials."""

from __future__ import annotations


def cmd_smoke_model(args) -> int:
    from corpus.smoke import make_smoke_model

    out = make_smoke_model(args.dir, seed=args.seed)
    print(f"wrote a smoke model to {out} (random weights: its text is noise; it tests the machinery, not quality)")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "smoke-model",
        help="write a tiny random-weight model for offline CPU trials (its text is noise)",
        description="Write a tiny random-weight Llama-style model (with a tokenizer trained on the spot "
        "and a chat template) to DIR. Its text is NOISE: it exists to try a recipe and the whole "
        "machinery end to end on a CPU, offline, before spending GPU hours. Loads in vLLM and transformers.",
    )
    p.add_argument("dir", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    p.set_defaults(func=cmd_smoke_model)
