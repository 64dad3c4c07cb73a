"""Throughput of the sandbox pool vs the naive way (one fresh ``python -c`` per snippet).

    PYTHONPATH=. python bench/sandbox.py [--n 500] [--workers 2]

Both sides run the same benign snippets (functions + calls; every fifth uses numpy, like
textbook extracts do) with the same concurrency (``--workers`` at a time), on the same machine,
in one run, and must print the same output.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from corpus.sandbox import Sandbox

TEMPLATES = [
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint(fib({i}))\n",
    "def word_counts(text):\n    counts = {{}}\n    for w in text.split():\n        counts[w] = counts.get(w, 0) + 1\n    return counts\n\nprint(word_counts('a b a c b a {i}'))\n",
    "from collections import deque\n\ndef window_max(xs, k):\n    q, out = deque(), []\n    for i, x in enumerate(xs):\n        while q and xs[q[-1]] <= x:\n            q.pop()\n        q.append(i)\n        if q[0] <= i - k:\n            q.popleft()\n        if i >= k - 1:\n            out.append(xs[q[0]])\n    return out\n\nprint(window_max([{i}, 3, 1, 4, 1, 5, 9, 2, 6], 3))\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n    def pop(self):\n        return self.items.pop()\n\ns = Stack()\nfor x in range({i} % 7 + 1):\n    s.push(x)\nprint(s.pop(), len(s.items))\n",
    "import numpy as np\n\ndef normalize(v):\n    return v / np.linalg.norm(v)\n\nprint(np.round(normalize(np.array([3.0, 4.0, {i}.0])), 3))\n",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="snippets (default 500)")
    ap.add_argument("--workers", type=int, default=2, help="concurrency of both sides (default 2)")
    args = ap.parse_args()
    codes = [TEMPLATES[i % len(TEMPLATES)].format(i=i) for i in range(args.n)]

    t = time.perf_counter()
    with Sandbox(workers=args.workers, timeout=10) as sb:
        startup = time.perf_counter() - t
        t = time.perf_counter()
        results = sb.run_many(codes)
    pool_s = time.perf_counter() - t
    assert all(r.status == "ok" for r in results), [r for r in results if r.status != "ok"][:1]

    def naive(code: str) -> str:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        return p.stdout

    t = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as ex:
        outputs = list(ex.map(naive, codes))
    naive_s = time.perf_counter() - t
    assert outputs == [r.stdout for r in results], "pool and naive outputs differ"

    pool, base = args.n / pool_s, args.n / naive_s
    print(f"{args.n} snippets, {args.workers} at a time")
    print(f"  pool  (warm fork-server, all isolation layers): {pool:8.1f} snippets/s  ({pool_s:.2f} s; +{startup:.2f} s start-up)")
    print(f"  naive (python -c per snippet, no isolation):    {base:8.1f} snippets/s  ({naive_s:.2f} s)")
    print(f"  ratio: {pool / base:.1f}x")


if __name__ == "__main__":
    main()
