"""Speed and memory of ``corpus diversity`` per 100k documents, on one core.

The documents are real text, offline: the running interpreter's standard-library sources cut
into extracts of about ``--words`` words, every other one wrapped as prose + a ```python block
(so the code measures have snippets to parse), written to one Parquet file. Measured in one run:

(a) ``corpus diversity --input FILE`` as the CLI runs it (read, every metric, the recipe's dedup
    for the near-duplicate rate), documents per second and seconds per 100k documents;
(b) the same without dedup (``corpus.diversity.Diversity`` alone over the same texts);
(c) the floor: reading the same texts and splitting them into words (NFKC, lower, ``\\w+``),
    nothing else. The ratios (a)/(c) and (b)/(c) say what the metrics cost over a tokenising pass.
Peak RSS is printed after each phase (it includes the earlier phases).

    PYTHONPATH=$PWD python bench/diversity.py [--docs 100000] [--words 300]
"""

from __future__ import annotations

import argparse
import resource
import sysconfig
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def documents(n: int, words: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    docs: list[str] = []
    while len(docs) < n:
        for f in files:
            lines, count = [], 0
            for line in f.read_text(errors="replace").splitlines():
                lines.append(line)
                count += len(line.split())
                if count >= words:
                    body = "\n".join(lines)
                    docs.append(f"An extract from {f.name}, part {len(docs)}.\n\n```python\n{body}\n```\n" if len(docs) % 2 else body)
                    lines, count = [], 0
                    if len(docs) == n:
                        return docs
    return docs


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=300)
    args = ap.parse_args()

    from corpus.diversity import Diversity, measure_input, words
    from corpus.records import iter_rows
    from corpus.recipe import load_recipe

    t0 = time.perf_counter()
    docs = documents(args.docs, args.words)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.parquet"
        pq.write_table(pa.table({"text": docs}), path, row_group_size=4096)
        del docs
        print(f"{args.docs:,} documents of ~{args.words} words ({path.stat().st_size / 1e6:.0f} MB Parquet) "
              f"made in {time.perf_counter() - t0:.1f} s; RSS {rss_mb():,.0f} MB")

        def timed(name: str, fn) -> float:
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            print(f"{name}: {dt:,.1f} s = {args.docs / dt:,.0f} docs/s = {dt * 100_000 / args.docs:,.1f} s per 100k docs; "
                  f"peak RSS {rss_mb():,.0f} MB")
            return dt

        def floor():
            for row in iter_rows(path, ["text"]):
                words(row["text"])

        def metrics():
            d = Diversity()
            for row in iter_rows(path, ["text"]):
                d.add(row["text"])
            d.result()

        c = timed("(c) floor: read + words", floor)
        b = timed("(b) every metric, no dedup", metrics)
        a = timed("(a) corpus diversity --input (with dedup)", lambda: measure_input(path, load_recipe("textbooks").dedup))
    print(f"ratio (a)/(c) = {a / c:.2f}x, (b)/(c) = {b / c:.2f}x the time of a tokenising pass")


if __name__ == "__main__":
    main()
