"""``corpus topics expand`` against a real OpenAI-compatible HTTP server on loopback that answers
each leaf's request with a scripted text, through the real ``openai`` engine."""

import json
import re
from collections import Counter

import pytest
import yaml

from corpus.cli import main
from corpus.config import ConfigError
from corpus.engines import EngineConfig, make_engine
from corpus.expand import expand, leaf_seed, parse_list, select
from corpus.taxonomy import load_topics
from tests.corpus.test_engines import Server, reply

TREE = """\
name: tiny
description: a three-leaf tree for tests
provenance: hand-written for tests
tree:
  Algorithms:
    Sorting:
      - Insertion sort
      - Merge sort
  Data structures:
    - Hash tables
"""

# leaf path -> (answer, finish_reason)
ANSWERS = {
    "Algorithms > Sorting > Insertion sort": ("""Here are some concepts:
1. **Binary insertion sort**: uses binary search to find the slot
2) Insertion sort in Python
3. Merge sort
4. binary insertion sorts
5. Sentinel values in insertion sort - avoid a bound check
6.
7. A very long name that goes on and on about many different things at once in one line
8. Shifting elements right during insertion
9. Counting inversions with insertion sort
I hope this helps!""", "stop"),
    "Algorithms > Sorting > Merge sort": ("• Top-down merge sort\n* mid = len(arr) // 2\n* Topic 2\n* List 3 narrower concepts under Merge sort\n* Merging two sorted lists\n- Binary insertion sort\n", "stop"),
    "Data structures > Hash tables": ("1. Open addressing\n2. Keys > values ordering\n3. Separate chaining\n4. Load factor and resi", "length"),
}
NEW = {
    "Algorithms > Sorting > Insertion sort": ["Binary insertion sort", "Sentinel values in insertion sort", "Shifting elements right during insertion"],
    "Algorithms > Sorting > Merge sort": ["Top-down merge sort", "Merging two sorted lists"],
    "Data structures > Hash tables": ["Open addressing", "Separate chaining"],
}
REJECTED = {"empty": 1, "bad_character": 1, "too_long": 1, "not_a_concept": 3, "truncated": 1, "restates_parent": 1, "near_identical_sibling": 1,
            "duplicate_in_tree": 2, "over_limit": 1}


class Teacher:
    """The scripted server: answers by the leaf path in the prompt, records every request."""

    def __init__(self):
        self.seen: list[tuple[str, int, str]] = []  # (leaf path, seed, prompt)
        self.fail: set[str] = set()  # leaf paths answered with HTTP 500

        def handle(h, body):
            req = json.loads(body)
            user = req["messages"][-1]["content"]
            path = re.search(r"^Topic path: (.+)$", user, re.M).group(1)
            self.seen.append((path, req["seed"], user))
            if path in self.fail:
                return reply(h, 500, b'{"error": "scripted"}')
            text, finish = ANSWERS.get(path, ("1. Linear probing\n2. Quadratic probing", "stop"))
            reply(h, 200, json.dumps({"choices": [{"message": {"content": text}, "finish_reason": finish}]}).encode())

        self.srv = Server(handle)
        self.url = self.srv.url

    def engine(self, model="teacher"):
        return make_engine(EngineConfig(name="openai", model=model, base_url=self.url, max_retries=0, timeout=10))

    def requests(self) -> Counter:
        return Counter(path for path, _, _ in self.seen)


@pytest.fixture
def teacher():
    t = Teacher()
    yield t
    t.srv.close()


@pytest.fixture
def tree(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TREE)
    return p


def quiet(*args):
    pass


# -- parsing and selection -----------------------------------------------------------------
@pytest.mark.parametrize("text, items", [
    ("1. Alpha\n2. Beta", ["Alpha", "Beta"]),
    ("1) Alpha\n2) Beta beta", ["Alpha", "Beta beta"]),
    ("- Alpha\n* Beta\n• Gamma\n+ Delta", ["Alpha", "Beta", "Gamma", "Delta"]),
    ("1. **Alpha**: the first letter\n2. **Beta:** the second\n3. __Gamma__ - the third\n4. Delta — the fourth", ["Alpha", "Beta", "Gamma", "Delta"]),
    ("1. `dict.get` with a default.", ["dict.get with a default"]),
    ("Sure! Here are three concepts you could teach in a short section:\n\n1. Alpha\n\nLet me know if you want more.", ["Alpha"]),
    ("Here are the concepts\nAlpha\nBeta gamma", ["Alpha", "Beta gamma"]),
    ("### Concepts\nSorting ideas:\n- Alpha\n```\n- Beta\n```", ["Alpha", "Beta"]),
    ("1.\n2. Alpha", ["", "Alpha"]),
    ("1.1 Alpha\n(2) Beta", ["Alpha", "Beta"]),
    ("- a == b versus a is b", ["a == b versus a is b"]),
])
def test_parse_list(text, items):
    assert parse_list(text) == items


def test_select_counts_each_reason():
    rejected = Counter()
    taken = {"merge sort", "insertion sort", "sorting"}
    items = ["", "a > b", " ".join(["word"] * 13), "Insertion sort in Python", "Insertion", "Binary insertion sort",
             "binary insertion sorts", "Merge sort", "Gap sequences", "Counting inversions"]
    kept = select(items, "Insertion sort", 2, taken, rejected)
    assert kept == ["Binary insertion sort", "Gap sequences"]
    assert rejected == {"empty": 1, "bad_character": 1, "too_long": 1, "restates_parent": 2, "near_identical_sibling": 1,
                        "duplicate_in_tree": 1, "over_limit": 1}
    assert {"binary insertion sort", "gap sequence"} <= taken  # the kept ones are now in the tree


def test_leaf_seed_is_a_function_of_seed_and_path():
    a = leaf_seed(0, "A > B")
    assert a == leaf_seed(0, "A > B") and 0 <= a < 2**31
    assert len({a, leaf_seed(1, "A > B"), leaf_seed(0, "A > C")}) == 3


# -- the loader's new forms ----------------------------------------------------------------
def test_loader_takes_sub_branches_in_lists_and_expansions(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("tree:\n  A:\n    - x\n    - y: [y1, y2]\n    - z: {z1: [deep]}\n"
                 "expansions:\n  A > y > y1: {model: m, date: d, parent: y, prompt_sha256: abc}\n  A > z: {model: m}\n")
    t = load_topics([str(p)])
    assert t.leaves == (("A", "x"), ("A", "y", "y1"), ("A", "y", "y2"), ("A", "z", "z1", "deep"))
    # A key names a leaf, or a branch that a later expansion grew from an added leaf.
    assert t.expansions == {"A > y > y1": {"model": "m", "date": "d", "parent": "y", "prompt_sha256": "abc"}, "A > z": {"model": "m"}}


@pytest.mark.parametrize("text, error", [
    ("tree:\n  A:\n    - x\n    - y: [apple, Apples]\n", "A > y > Apples: near-identical to sibling 'apple'"),
    ("tree:\n  A:\n    - x\n    - y:\n", "A > y: empty node"),
    ("tree:\n  A: [x, X]\n", "near-identical"),
    ("tree:\n  A: [x]\nexpansions:\n  A > y: {model: m}\n", ":4: expansions: A > y: not a node of the tree"),
    ("tree:\n  A: [x]\nexpansions:\n  A > x: m\n", "expected a mapping"),
])
def test_loader_rejects(tmp_path, text, error):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_topics([str(p)])


# -- expand ------------------------------------------------------------------------------
def test_expand_writes_a_loadable_tree_with_provenance(teacher, tree, tmp_path):
    out = tmp_path / "out" / "tiny-x.yaml"
    stats = expand(str(tree), teacher.engine(), out=out, per_leaf=3, seed=7, log=quiet)
    assert stats["complete"] and not out.with_name("tiny-x.yaml.partial").exists()
    assert (stats["leaves_before"], stats["leaves_after"], stats["requests"], stats["expanded"], stats["accepted"]) == (3, 7, 3, 3, 7)
    assert {k: n for k, n in stats["rejected"].items() if n} == REJECTED

    t = load_topics([str(out)])
    want = [tuple(p.split(" > ")) + (c,) for p, cs in NEW.items() for c in cs]
    assert list(t.leaves) == want
    assert set(t.expansions) == {" > ".join(leaf) for leaf in want}
    e = t.expansions["Data structures > Hash tables > Open addressing"]
    assert e["model"] == "teacher" and e["parent"] == "Hash tables" and re.fullmatch(r"[0-9a-f]{12}", e["prompt_sha256"])
    doc = yaml.safe_load(out.read_text())
    assert doc["name"] == "tiny-x" and doc["description"] == "a three-leaf tree for tests"
    assert re.fullmatch(rf"expanded by teacher from {re.escape(str(tree))} on \d{{4}}-\d\d-\d\d \(3 per leaf, seed 7, 3 of 3 leaves\); "
                        "source provenance: hand-written for tests", doc["provenance"])
    assert "- Hash tables: [Open addressing, Separate chaining]" in out.read_text()

    # One request per leaf, showing its path and neighbours, seeded from the seed and the path.
    assert teacher.requests() == Counter(list(ANSWERS))
    for path, seed, user in teacher.seen:
        assert seed == leaf_seed(7, path) and f"Topic path: {path}\n" in user and "List 3 narrower concepts" in user
    assert "Topics next to it: Merge sort\n" in dict((p, u) for p, _, u in teacher.seen)["Algorithms > Sorting > Insertion sort"]


def test_an_expanded_tree_expands_again(teacher, tree, tmp_path):
    expand(str(tree), teacher.engine(), out=tmp_path / "x.yaml", log=quiet)
    stats = expand(str(tmp_path / "x.yaml"), teacher.engine(), out=tmp_path / "xx.yaml", branch="Data structures > Hash tables > Open addressing", log=quiet)
    assert (stats["leaves_before"], stats["leaves_after"], stats["accepted"]) == (7, 8, 2)
    t = load_topics([str(tmp_path / "xx.yaml")])
    assert t.leaves[-3:] == (("Data structures", "Hash tables", "Open addressing", "Linear probing"),
                             ("Data structures", "Hash tables", "Open addressing", "Quadratic probing"),
                             ("Data structures", "Hash tables", "Separate chaining"))
    assert len(t.expansions) == 9 and t.expansions["Data structures > Hash tables > Open addressing"]["parent"] == "Hash tables"
    assert "  - Open addressing: [Linear probing, Quadratic probing]\n" in (tmp_path / "xx.yaml").read_text()


def test_same_seed_same_output(teacher, tree, tmp_path):
    outs = []
    for d in ("a", "b"):
        expand(str(tree), teacher.engine(), out=tmp_path / d / "x.yaml", seed=3, log=quiet)
        outs.append((tmp_path / d / "x.yaml").read_text())
    assert outs[0] == outs[1]
    first, second = teacher.seen[:3], teacher.seen[3:]
    assert sorted(first) == sorted(second)


def test_branch_and_max_leaves(teacher, tree, tmp_path):
    stats = expand(str(tree), teacher.engine(), out=tmp_path / "x.yaml", branch="Algorithms > Sorting", max_leaves=1, log=quiet)
    assert teacher.requests() == {"Algorithms > Sorting > Insertion sort": 1}
    assert (stats["selected"], stats["leaves_after"]) == (1, 5)
    with pytest.raises(ConfigError, match="--branch Nope: no leaf"):
        expand(str(tree), teacher.engine(), out=tmp_path / "y.yaml", branch="Nope", log=quiet)


def test_resume_asks_only_for_missing_leaves(teacher, tree, tmp_path):
    expand(str(tree), teacher.engine(), out=tmp_path / "whole" / "x.yaml", log=quiet)
    whole = (tmp_path / "whole" / "x.yaml").read_text()
    teacher.seen.clear()

    # A first run in which one leaf's request fails: the others are kept in the partial, no output.
    out = tmp_path / "x.yaml"
    partial = tmp_path / "x.yaml.partial"
    teacher.fail = {"Data structures > Hash tables"}
    stats = expand(str(tree), teacher.engine(), out=out, log=quiet)
    assert not stats["complete"] and stats["failed"] == 1 and not out.exists()
    assert [json.loads(line).get("leaf") for line in partial.read_text().splitlines()] == [
        None, "Algorithms > Sorting > Insertion sort", "Algorithms > Sorting > Merge sort"]

    # Other settings: refused, the partial untouched.
    before = partial.read_bytes()
    with pytest.raises(ConfigError, match=r"partial result of another expansion: per_leaf 3 \(now 2\)"):
        expand(str(tree), teacher.engine(), out=out, per_leaf=2, log=quiet)
    with pytest.raises(ConfigError, match=r"model 'teacher' \(now 'other'\), seed 0 \(now 1\)"):
        expand(str(tree), teacher.engine("other"), out=out, seed=1, log=quiet)
    assert partial.read_bytes() == before

    # Killed while writing a line: the cut line is dropped; the rerun asks for the missing leaf only.
    with open(partial, "a") as f:
        f.write('{"leaf": "Data structures > Hash tables", "te')
    teacher.fail, teacher.seen = set(), []
    stats = expand(str(tree), teacher.engine(), out=out, log=quiet)
    assert teacher.requests() == {"Data structures > Hash tables": 1}
    assert stats["complete"] and (stats["requests"], stats["resumed"]) == (1, 2) and not partial.exists()
    assert out.read_text() == whole


def test_cli_expand_then_topics(teacher, tree, tmp_path, capsys):
    out = tmp_path / "x.yaml"
    argv = ["topics", "expand", "--topics", str(tree), "--model", "teacher", "--engine", "openai", "--base-url", teacher.url,
            "--per-leaf", "2", "--seed", "5", "--out", str(out), "--json"]
    assert main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["complete"] and (stats["per_leaf"], stats["seed"], stats["leaves_after"]) == (2, 5, 6)
    assert main(["topics", "--topics", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["leaves"], shown["expansions"], shown["min_depth"], shown["max_depth"]) == (6, 6, 3, 4)
    assert shown["branches"] == {"Algorithms": 4, "Data structures": 2}
    assert main(["topics", "--topics", str(out)]) == 0
    assert "leaves: 6 (depth 3-4)" in capsys.readouterr().out
