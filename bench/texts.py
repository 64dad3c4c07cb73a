"""Real text for the benches, offline: Python's standard library sources and /usr/share/doc."""

from __future__ import annotations

import glob
import os


def real_extracts(n: int, words_per_doc: int = 650, skip: int = 0, first: tuple[str, ...] = ()) -> list[str]:
    """Extracts n (after ``skip``) of ~``words_per_doc`` words cut at line ends, from the texts
    ``first`` and then the files (sorted lists, so reproducible on one machine), read lazily."""
    files = sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True))
    files += sorted(f for f in glob.glob("/usr/share/doc/**/*", recursive=True) if os.path.isfile(f) and not f.endswith(".gz"))

    def texts():
        yield from first
        for f in files:
            try:
                yield open(f, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue

    docs: list[str] = []
    for text in texts():
        cur, count = [], 0
        for line in text.splitlines():
            cur.append(line)
            count += len(line.split())
            if count >= words_per_doc:
                docs.append("\n".join(cur))
                cur, count = [], 0
        if len(docs) >= n + skip:
            break
    return docs[skip : skip + n]
