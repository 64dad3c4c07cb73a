"""The quality gate on hand-written extracts: every check accepts a good one and rejects a bad
one with its exact reason; snippets run in the real sandbox; the CLI rewrites a run in place."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.checks import CHECKS, check_text, parse
from corpus.cli import main
from corpus.config import ConfigError, build, load_yaml
from corpus.gate import Gate, GateConfig
from corpus.recipe import load_recipe
from corpus.records import record_schema
from corpus.sandbox import Sandbox

OVERVIEW = (
    "Recursion solves a problem by solving smaller copies of the same problem. A recursive function "
    "calls itself with a smaller input until it reaches a base case that it can answer directly. The base "
    "case stops the chain of calls; without it the function would call itself forever and Python would "
    "raise a RecursionError once the interpreter's stack limit is reached.\n\n"
    "Consider the factorial of a number n, the product of all positive integers up to n. We define it as "
    "n times the factorial of n minus one, with the factorial of zero equal to one.\n"
)
SNIPPET = "def factorial(n):\n    if n == 0:\n        return 1\n    return n * factorial(n - 1)\n\nprint(factorial(5))\n"
GOOD = OVERVIEW + "\n```python\n" + SNIPPET + "```\n\nThe call unfolds into five nested calls before the base case returns.\n"


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=2, timeout=2, memory_mb=512) as s:
        yield s


def gate_rows(texts, cfg, sb):
    """The Gate stage over a table of ``texts``: (rows as dicts, counts by verdict)."""
    stage = Gate(cfg, sandbox=sb)
    out = stage(pa.table({"text": pa.array(texts, pa.string())}))
    counts = {"accepted": stage.stats.kept, **stage.stats.dropped}
    return out.to_pylist(), {k: v for k, v in counts.items() if v}


def verdict(text, cfg=None, finish_reason="stop"):
    gate, detail, *_ = check_text(text, finish_reason, cfg or GateConfig())
    return gate, detail


def test_good_extract_is_accepted_with_counts(sb):
    rows, counts = gate_rows([GOOD], GateConfig(), sb)
    assert (rows[0]["gate"], rows[0]["gate_detail"], rows[0]["n_snippets"], rows[0]["snippets_ok"]) == ("accepted", "", 1, 1)
    assert counts == {"accepted": 1}


def test_parse_structure():
    text = OVERVIEW + "```py\nx = 1\n```\nOutput:\n```\n42\n```\n```bash\nls\n```\n```\nprint('untagged')\n```\nEnd."
    ex = parse(text)
    assert [(b.lang, b.python) for b in ex.blocks] == [("py", True), ("", False), ("bash", False), ("", True)]
    assert ex.snippets == ["x = 1\n", "print('untagged')\n"]
    assert ex.words_after_code == 1 and not ex.unclosed_fence and ex.code_lines == 2


# -- one test per check: accepted variant, rejected variant, exact reason ---------------------
def test_empty():
    assert verdict(None) == ("empty", "no text")
    assert verdict("  \n") == ("empty", "no text")


def test_truncated():
    assert verdict(GOOD, finish_reason="length") == ("truncated", "finish reason length")
    assert verdict(OVERVIEW + "```python\n" + SNIPPET) == ("truncated", "unclosed code fence")


def test_too_short_and_too_long():
    assert verdict("Recursion is neat.\n```python\nprint(1)\n```\n") == ("too_short", "6 words < 80")
    assert verdict(GOOD, GateConfig(max_words=50))[0] == "too_long"
    assert verdict(GOOD, GateConfig(min_words=10, max_words=500))[0] == "accepted"


@pytest.mark.parametrize(
    "opening",
    ["Sure! Here is a textbook extract.\n\n", "As an AI language model, I will explain.\n\n", "Here's the extract you asked for:\n\n"],
)
def test_refusal_and_meta_talk(opening):
    gate, detail = verdict(opening + GOOD)
    assert gate == "refusal" and detail.startswith("matched ")
    assert verdict(GOOD + "\nI hope this helps!\n") == ("refusal", "matched 'I hope this helps'")


def test_unfenced_code_repair_reject_ignore(sb):
    unfenced = OVERVIEW + "\n" + SNIPPET + "\nThe call unfolds into five nested calls.\n"
    assert parse(unfenced).snippets == [SNIPPET]  # repaired: fenced and run like any snippet
    rows, _ = gate_rows([unfenced], GateConfig(), sb)
    assert (rows[0]["gate"], rows[0]["snippets_ok"]) == ("accepted", 1)
    assert verdict(unfenced, GateConfig(unfenced_code="reject")) == ("unfenced_code", "1 unfenced code block(s)")
    assert verdict(unfenced, GateConfig(unfenced_code="ignore")) == ("no_code", "no Python snippet")


def test_no_code():
    assert verdict(OVERVIEW) == ("no_code", "no Python snippet")
    assert verdict(OVERVIEW, GateConfig(skip=["no_code"]))[0] == "accepted"


def test_too_many_snippets_and_snippet_too_long():
    many = OVERVIEW + "".join(f"```python\nprint({i})\n```\n" for i in range(7))
    assert verdict(many) == ("too_many_snippets", "7 snippets > 6")
    long = OVERVIEW + "```python\n" + "".join(f"x{i} = {i}\n" for i in range(81)) + "```\n"
    assert verdict(long) == ("snippet_too_long", "snippet 1: 81 lines > 80")


def test_text_after_code():
    tail = " ".join(f"word{i}" for i in range(45))
    assert verdict(GOOD + tail + "\n") == ("text_after_code", "57 words after the last code block > 40")
    assert verdict(GOOD + tail, GateConfig(skip=["text_after_code"]))[0] == "accepted"


def test_repetition():
    looped = OVERVIEW + "```python\n" + SNIPPET + "```\n" + "The function returns the factorial of its input value.\n" * 8
    assert verdict(looped, GateConfig(skip=["text_after_code"])) == ("repetition", "7/14 lines are repeats")
    words = ("the cat sat on the mat " * 30).strip()
    gate, detail = verdict(words + "\n```python\nprint(1)\n```\n")
    assert gate == "repetition" and detail.startswith("top 2-gram 'the cat' covers")
    assert verdict(GOOD)[0] == "accepted"


def test_snippet_syntax():
    broken = GOOD.replace("print(factorial(5))", "print(factorial(5)")
    assert verdict(broken) == ("snippet_syntax", "snippet 1: '(' was never closed (line 6)")


def test_disallowed_import():
    bad = GOOD.replace("def factorial", "import requests\nfrom pandas import DataFrame\n\ndef factorial")
    assert verdict(bad) == ("disallowed_import", "snippet 1 imports pandas, requests")
    ok = GOOD.replace("def factorial", "import numpy as np\nimport os.path\nfrom collections import deque\n\ndef factorial")
    assert verdict(ok)[0] == "accepted"
    assert verdict(bad, GateConfig(allowed_modules=["numpy", "pandas", "requests"]))[0] == "accepted"


def test_snippets_run_in_the_sandbox(sb):
    texts = {
        "error": GOOD.replace("print(factorial(5))", "print(factorial(5) / 0)"),
        "timeout": GOOD.replace("print(factorial(5))", "while factorial(1):\n    pass"),
        "two": OVERVIEW + "```python\nprint(2)\n```\nand\n```python\nprint(undefined_name)\n```\n",
        "numpy": GOOD.replace("print(factorial(5))", "import numpy as np\nprint(np.prod(np.arange(1, 6)) == factorial(5))"),
    }
    rows, counts = gate_rows(list(texts.values()), GateConfig(timeout=1), sb)
    got = {k: (r["gate"], r["gate_detail"], r["n_snippets"], r["snippets_ok"]) for k, r in zip(texts, rows)}
    # A busy loop reaches its CPU-time and wall-clock limits together: which one stops it depends on the load.
    assert got.pop("timeout") in {("snippet_timeout", f"snippet 1: {limit} limit 1 s", 1, 0) for limit in ("wall-clock", "CPU-time")}
    assert got == {
        "error": ("snippet_error", "snippet 1: error: ZeroDivisionError: division by zero", 1, 0),
        "two": ("snippet_error", "snippet 2: error: NameError: name 'undefined_name' is not defined", 2, 1),
        "numpy": ("accepted", "", 1, 1),
    }
    assert counts == {"snippet_error": 2, "snippet_timeout": 1, "accepted": 1}


def test_joined_snippets_may_build_on_each_other(sb):
    split = OVERVIEW + "```python\ndef double(x):\n    return 2 * x\n```\nThen call it:\n```python\nprint(double(21))\n```\n"
    rows, _ = gate_rows([split], GateConfig(), sb)
    assert (rows[0]["gate"], rows[0]["gate_detail"]) == ("dead_code", "snippet 1 defines double but never uses it")
    rows, _ = gate_rows([split], GateConfig(reject_dead_code=False), sb)
    assert rows[0]["gate_detail"] == "snippet 2: error: NameError: name 'double' is not defined"
    rows, _ = gate_rows([split], GateConfig(standalone_snippets=False), sb)
    assert (rows[0]["gate"], rows[0]["snippets_ok"]) == ("accepted", 2)


def test_dead_code():
    uncalled = GOOD.replace("print(factorial(5))", "")
    assert verdict(uncalled) == ("dead_code", "snippet 1 defines factorial but never uses it")
    twice = GOOD.replace("print(factorial(5))", "def factorial(n):\n    return 1\n\nprint(factorial(5))")
    assert verdict(twice) == ("dead_code", "snippet 1 defines factorial twice")
    unused_main = GOOD.replace("print(factorial(5))", "print(factorial(5))\n\ndef main():\n    print(factorial(3))")
    assert verdict(unused_main) == ("dead_code", "snippet 1 defines main but never uses it")
    assert verdict(GOOD.replace(SNIPPET, "# factorial(5) is 120\n")) == ("dead_code", "snippet 1 has no statement (only comments)")
    # Used as a value, or under a main guard, counts as used; so does a class that is instantiated.
    for tail in ("print(list(map(factorial, [1, 2])))", 'if __name__ == "__main__":\n    print(factorial(3))'):
        assert verdict(GOOD.replace("print(factorial(5))", tail))[0] == "accepted"
    assert verdict(uncalled, GateConfig(reject_dead_code=False))[0] == "accepted"
    # Joined snippets: a later snippet may call an earlier one's function, and may redefine it on purpose.
    two = OVERVIEW + "```python\ndef f(x):\n    return x\n```\nBetter:\n```python\ndef f(x):\n    return 2 * x\n\nprint(f(2))\n```\n"
    assert verdict(two, GateConfig(standalone_snippets=False))[0] == "accepted"


def test_wrong_output(sb):
    texts = {
        "right comment": GOOD.replace("print(factorial(5))", "print(factorial(5))  # Output: 120"),
        "wrong comment": GOOD.replace("print(factorial(5))", "print(factorial(5))  # Output: 24"),
        "wrong arrow": GOOD.replace("print(factorial(5))", "print(factorial(4))  # -> 120"),
        "quoted str": GOOD.replace("print(factorial(5))", "print('ok' if factorial(3) == 6 else 'no')  # prints: 'ok'"),
        "right listing": GOOD.replace("```\n\nThe call", "```\n\nOutput:\n\n```\n120\n```\n\nThe call"),
        "wrong listing": GOOD.replace("```\n\nThe call", "```\n\nRunning it prints:\n```\n12\n0\n```\n\nThe call"),
    }
    rows, _ = gate_rows(list(texts.values()), GateConfig(), sb)
    got = {k: (r["gate"], r["gate_detail"]) for k, r in zip(texts, rows)}
    assert got == {
        "right comment": ("accepted", ""),
        "wrong comment": ("wrong_output", "snippet 1: says it prints '24', printed '120'"),
        "wrong arrow": ("wrong_output", "snippet 1: says it prints '120', printed '24'"),
        "quoted str": ("accepted", ""),
        "right listing": ("accepted", ""),
        "wrong listing": ("wrong_output", "snippet 1: says it prints '12\\n0', printed '120'"),
    }
    rows, _ = gate_rows([texts["wrong comment"]], GateConfig(check_output_claims=False), sb)
    assert rows[0]["gate"] == "accepted"


# -- the outline stage and exercises -------------------------------------------------------
def test_key_sentence_of_an_outline():
    from corpus.checks import key_sentence

    assert key_sentence("Summary: it sorts.\nOutline: sort_list, then return.\nSentence: The function returns a new list.") == "The function returns a new list."
    assert key_sentence('**Summary:** x\n**Key sentence:** "Recursion needs a base case."') == "Recursion needs a base case."
    assert key_sentence("Summary: one line.\nOutline: two lines, no key sentence.") is None
    assert key_sentence("Two sentences. On one line.") is None
    assert key_sentence(' "The function sorts a list in place." \n') == "The function sorts a list in place."  # a stage that asks for the sentence alone
    assert key_sentence(None) is None


def test_outline_not_followed():
    outline = "Summary: computes factorials.\nOutline: factorial, recursion.\nSentence: The base case stops the chain of calls!"

    def got(text, o=outline):
        return check_text(text, "stop", GateConfig(), o)[:2]

    assert got(GOOD) == ("accepted", "")  # the sentence is in the prose (normalised: case, punctuation)
    assert got(GOOD.replace("The base case stops", "It stops")) == (
        "outline_not_followed", "lacks the outline's key sentence 'The base case stops the chain of calls!'")
    assert got(GOOD, "Summary: computes factorials.\nOutline: factorial.") == (
        "outline_not_followed", "the outline gives no key sentence (no 'Sentence:' line, and more than one sentence)")
    assert got(GOOD, None) == ("accepted", "")  # no outline stage: nothing to follow


EXERCISE = (
    "```python\nfrom typing import List\n\n\ndef running_sum(xs: List[int]) -> List[int]:\n"
    '    """Return the running sums of xs: element i is the sum of xs[0..i]."""\n'
    "    out, total = [], 0\n    for x in xs:\n        total += x\n        out.append(total)\n    return out\n\n\n"
    "assert running_sum([1, 2, 3]) == [1, 3, 6]\nassert running_sum([]) == []\nassert running_sum([5]) == [5]\n```\n"
)


def test_exercises_are_split_checked_and_their_tests_run(sb):
    cfg = GateConfig(exercise=True, min_words=10, standalone_snippets=False)
    texts = {
        "good": EXERCISE,
        # the tests in a block of their own: the snippets run together
        "split": EXERCISE.replace("\n\nassert running_sum([1, 2, 3])", "\n```\nThe tests:\n```python\nassert running_sum([1, 2, 3])"),
        "failing": EXERCISE.replace("[1, 3, 6]", "[1, 2, 3]"),
        "no tests": EXERCISE.split("\n\n\nassert")[0] + "\n\n\nprint(running_sum([1, 2]))\n```\n",
        "no docstring": EXERCISE.replace('    """Return the running sums of xs: element i is the sum of xs[0..i]."""\n', ""),
        "no solution": EXERCISE.replace("    out, total = [], 0\n    for x in xs:\n        total += x\n        out.append(total)\n    return out\n", "    pass\n"),
    }
    rows, counts = gate_rows(list(texts.values()), cfg, sb)
    got = {k: (r["gate"], r["gate_detail"]) for k, r in zip(texts, rows)}
    assert got == {
        "good": ("accepted", ""),
        "split": ("accepted", ""),
        "failing": ("tests_failed", "assert running_sum([1, 2, 3]) == [1, 2, 3]"),
        "no tests": ("no_tests", "no assert calls running_sum"),
        "no docstring": ("bad_exercise", "no function with a docstring"),
        "no solution": ("bad_exercise", "running_sum has no solution after its docstring"),
    }
    good = rows[0]
    assert good["statement"] == 'from typing import List\n\n\ndef running_sum(xs: List[int]) -> List[int]:\n    """Return the running sums of xs: element i is the sum of xs[0..i]."""\n'
    assert good["solution"] == "    out, total = [], 0\n    for x in xs:\n        total += x\n        out.append(total)\n    return out\n"
    assert good["tests"] == "assert running_sum([1, 2, 3]) == [1, 3, 6]\nassert running_sum([]) == []\nassert running_sum([5]) == [5]\n"
    assert rows[1]["tests"] == good["tests"] and rows[2]["statement"] == good["statement"]
    assert rows[3]["statement"] is None  # rejected before the parts were taken
    # Off (the default): the same failing asserts are an ordinary snippet error.
    rows, _ = gate_rows([texts["failing"]], GateConfig(min_words=10), sb)
    assert (rows[0]["gate"], rows[0]["statement"]) == ("snippet_error", None)


def test_first_failing_check_wins():
    # Truncated and too short and refusal: truncated comes first in CHECKS.
    assert verdict("Sure! ```python\nprint(1)", finish_reason="length")[0] == "truncated"
    assert CHECKS.index("truncated") < CHECKS.index("too_short") < CHECKS.index("refusal")


def test_config_validation_names_the_key(tmp_path):
    loc = load_yaml(tmp_path / "g.yaml", text="skip: [nope]\nrefusal_patterns: ['(']\nmax_top_ngram_fraction: [0.5]\n")
    with pytest.raises(ConfigError) as e:
        build(GateConfig, loc.data, loc)
    msg = str(e.value)
    assert "g.yaml:1: skip: unknown check 'nope'" in msg
    assert "refusal_patterns[0]: not a valid regular expression" in msg
    assert "max_top_ngram_fraction: expected 3 fractions between 0 and 1" in msg


# -- pyarrow tables and the CLI ------------------------------------------------------------
def test_table_keeps_schema_and_rows(sb):
    recipe = load_recipe("textbooks")
    schema = record_schema(recipe.axes)
    rows = [{"id": f"h-{i}", "index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate([GOOD, None, "tiny"])]
    table = pa.Table.from_pylist(rows, schema=schema)
    stage = Gate(recipe.gate, sandbox=sb)
    out = stage(table)
    counts = {"accepted": stage.stats.kept, **stage.stats.dropped}
    assert out.schema == schema
    assert out.column("gate").to_pylist() == ["accepted", "empty", "too_short"]
    assert out.column("snippets_ok").to_pylist() == [1, None, None]
    assert out.column("id").to_pylist() == ["h-0", "h-1", "h-2"]
    assert counts == {"accepted": 1, "empty": 1, "too_short": 1}


def test_cli_run_dir_in_place(tmp_path, capsys):
    recipe = load_recipe("textbooks")
    run = tmp_path / "runs" / "demo"
    (run / "generated").mkdir(parents=True)
    (run / "recipe.yaml").write_text(recipe.to_yaml().replace("max_words_after_code: 40", "max_words_after_code: 5"))
    texts = [[GOOD, "tiny"], [GOOD.replace("print(factorial(5))", "1/0"), GOOD + "x " * 3]]
    for c, chunk in enumerate(texts):
        rows = [{"id": f"h-{c}{i}", "index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(chunk)]
        pq.write_table(pa.Table.from_pylist(rows, schema=record_schema(recipe.axes)), run / "generated" / f"chunk-{c:06d}.parquet")
    for _ in range(2):  # rerunning gives the same result
        assert main(["gate", "--run", str(run), "--workers", "1", "--json"]) == 0
        # The run's recipe (max_words_after_code: 5) is the one applied: GOOD has 12 words after its code.
        assert json.loads(capsys.readouterr().out) == {"too_short": 1, "text_after_code": 3}
    assert pq.read_table(run / "generated" / "chunk-000001.parquet").column("gate").to_pylist() == ["text_after_code"] * 2
    assert not list((run / "generated").glob(".*"))  # no temporary files left


def test_cli_input_output_jsonl_and_parquet(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": t, "extra": i}) + "\n" for i, t in enumerate([GOOD, "", GOOD.replace("(5))", "(5)")])))
    for out in ("out.jsonl", "out.parquet"):
        assert main(["gate", "--input", str(src), "--output", str(tmp_path / out), "--workers", "1"]) == 0
        printed = capsys.readouterr().out
        assert "3 extracts" in printed and "snippet_syntax" in printed
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["extra"], r["gate"], r["n_snippets"]) for r in rows] == [("0", 0, "accepted", 1), ("1", 1, "empty", 0), ("2", 2, "snippet_syntax", 1)]
    assert pq.read_table(tmp_path / "out.parquet").column("gate").to_pylist() == ["accepted", "empty", "snippet_syntax"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    assert main(["gate", "--input", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "missing column(s) text (columns: body)" in capsys.readouterr().err
    assert main(["gate", "--run", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_readme_gate_table_is_the_registry():
    from pathlib import Path

    from corpus.checks import REGISTRY, checks_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert checks_table(GateConfig()) in readme
    assert [c.name for c in REGISTRY] == list(CHECKS) and len(CHECKS) == 21


# -- the embedded teacher's own output (tests/corpus/data/teacher: made by `corpus generate` with
# SmolLM2-135M-Instruct, an early textbooks-tiny prompt) -------------------------------------------
TEACHER_TEXTS = Path(__file__).parent / "data" / "teacher" / "extracts.jsonl"
TEACHER_VERDICTS = {
    30: ("accepted", ""),  # 55 words explaining its code after it: text_after_code at 40 words rejected it
    110: ("accepted", ""),
    143: ("accepted", ""),
    38: ("dead_code", "snippet 1 defines calculate_relative_error, calculate_absolute_error but never uses them"),
    93: ("dead_code", "snippet 1 defines main but never uses it"),
    53: ("dead_code", "snippet 1 defines validate_list twice"),
    118: ("dead_code", "snippet 1 has no statement (only comments)"),
    145: ("wrong_output", "snippet 1: says it prints '6', printed '18'"),
    111: ("dead_code", "snippet 1 defines Graceful_shutdown_of_workers twice"),
    168: ("refusal", "matched 'textbook section'"),
    43: ("refusal", "matched 'opening section of the chapter'"),
}


def test_the_gate_on_the_teachers_own_text(sb):
    rows = [json.loads(line) for line in TEACHER_TEXTS.read_text().splitlines()]
    index = [int(r["id"].rsplit("-", 1)[1]) for r in rows]
    texts = [r["text"] for r in rows]
    cfg = load_recipe("textbooks-tiny").gate
    got, _ = gate_rows(texts, cfg, sb)
    assert {i: (g["gate"], g["gate_detail"]) for i, g in zip(index, got)} == TEACHER_VERDICTS
    # Each fix decides: without it, these extracts pass (or fail later for another reason).
    off = GateConfig(**{**vars(cfg), "reject_dead_code": False, "check_output_claims": False,
                        "refusal_patterns": GateConfig().refusal_patterns[:9]})
    before, _ = gate_rows(texts, off, sb)
    before = {i: g["gate"] for i, g in zip(index, before)}
    assert {i for i, g in before.items() if g == "accepted"} == {30, 110, 143, 38, 93, 53, 118, 145, 111, 168, 43}
    strict, _ = gate_rows([texts[0]], GateConfig(**{**vars(cfg), "max_words_after_code": 40}), sb)
    assert strict[0]["gate"] == "text_after_code"
    wrong_listing, _ = gate_rows([texts[index.index(111)]], GateConfig(**{**vars(cfg), "reject_dead_code": False}), sb)
    assert wrong_listing[0]["gate"] == "wrong_output"
