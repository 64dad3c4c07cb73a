"""The prompt plan: determinism, balance, uniqueness, random access."""

from collections import Counter
from pathlib import Path

import pytest

from corpus.config import ConfigError
from corpus.plan import Plan
from corpus.recipe import load_recipe


@pytest.fixture(scope="module")
def plan():
    return Plan(load_recipe("textbooks"))


def _tiny_recipe(tmp_path: Path, seed: int = 0) -> Path:
    (tmp_path / "t.yaml").write_text(
        "name: tiny\ntree:\n  Algorithms:\n    Sorting:\n      - Insertion sort\n      - Merge sort\n      - Heap sort\n"
    )
    (tmp_path / "a.yaml").write_text(
        "audiences:\n"
        "  - {name: student, description: A student who knows loops and functions already.}\n"
        "  - {name: engineer, description: An engineer who knows another language very well.}\n"
    )
    r = tmp_path / "r.yaml"
    r.write_text(
        f"name: tiny\nseed: {seed}\n"
        f"taxonomy: {{topics: ['{tmp_path / 't.yaml'}'], audiences: ['{tmp_path / 'a.yaml'}']}}\n"
        "axes: {position: [opening, closing]}\n"
        "templates: {extract: 'Teach {{ leaf }} to a {{ audience }} ({{ position }}).'}\n"
    )
    return r


def _combo(p):
    return tuple(p.entities.values())


def test_same_recipe_and_seed_give_identical_prompts_and_ids():
    a, b = Plan(load_recipe("textbooks")), Plan(load_recipe("textbooks"))
    for i in range(0, 5000, 97):
        pa, pb = a.prompt(i), b.prompt(i)
        assert (pa.id, pa.seed, pa.entities) == (pb.id, pb.seed, pb.entities)
        assert a.render(pa) == b.render(pb)
    assert a.prompt(7).id == f"{a.recipe.hash}-7"


def test_another_seed_gives_another_plan(plan):
    other = Plan(load_recipe("textbooks", {"seed": 1}))
    assert other.recipe.hash != plan.recipe.hash
    n = 300
    same = sum(_combo(plan.prompt(i)) == _combo(other.prompt(i)) for i in range(n))
    assert same < n // 10
    assert all(plan.prompt(i).seed != other.prompt(i).seed for i in range(n))


@pytest.mark.parametrize("extra", [0, 7])
def test_balance_over_ten_rounds(plan, extra):
    L = plan.L
    n = 10 * L + extra
    prompts = [plan.prompt(i) for i in range(n)]
    per_leaf = Counter(p.entities["topic"] for p in prompts)
    assert len(per_leaf) == L
    assert set(per_leaf.values()) <= {10, 11}
    assert sum(c == 11 for c in per_leaf.values()) == extra
    # (leaf, audience): within each leaf, audiences as even as its count allows.
    pairs = Counter((p.entities["topic"], p.entities["audience"]) for p in prompts)
    A = len(plan.audiences)
    for leaf, c in per_leaf.items():
        counts = [pairs.get((leaf, a.name), 0) for a in plan.audiences.items]
        assert max(counts) - min(counts) <= 1, leaf
        assert sum(counts) == c
    # No full combination repeats (there are far more combinations than prompts).
    assert len({_combo(p) for p in prompts}) == n
    # Every other axis is balanced too.
    for axis, values in plan.recipe.axes.items():
        counts = Counter(p.entities[axis] for p in prompts)
        assert set(counts) == set(values)
        assert max(counts.values()) / min(counts.values()) < 1.05, (axis, counts)
    # The coverage report counts the same plan.
    cov = plan.coverage(n)
    assert (cov["min_per_leaf"], cov["max_per_leaf"], cov["leaves_covered"]) == (10, 11 if extra else 10, L)
    assert cov["pairs_covered"] == len(pairs)
    assert cov["repeated_combinations"] == 0
    for axis in plan.recipe.axes:
        assert cov["axes"][axis] == dict(Counter(p.entities[axis] for p in prompts))


def test_no_combination_repeats_while_unused_ones_remain(tmp_path):
    plan = Plan(load_recipe(str(_tiny_recipe(tmp_path))))
    total = plan.combinations
    assert total == 3 * 2 * 2
    first = [_combo(plan.prompt(i)) for i in range(total)]
    assert len(set(first)) == total  # every combination once before any repeats
    second = [_combo(plan.prompt(i)) for i in range(total, 2 * total)]
    assert set(second) == set(first)
    assert plan.coverage(total + 5)["repeated_combinations"] == 5
    assert plan.coverage(total)["repeated_combinations"] == 0


def test_random_access_equals_sequential(plan):
    i = 1_234_567
    alone = Plan(load_recipe("textbooks")).prompt(i)
    for j in range(0, 40):  # visit other rounds first, then the sequence around i
        plan.prompt(j * 3001)
    seq = [plan.prompt(k) for k in range(i - 5, i + 5)]
    assert seq[5] == alone
    assert plan.render(seq[5]) == Plan(load_recipe("textbooks")).render(alone)


def test_rendered_prompt_carries_its_entities(plan):
    p = plan.prompt(42)
    text = plan.render(p)
    leaf = p.entities["topic"].split(" > ")[-1]
    assert leaf in text
    assert p.entities["audience"] in text
    assert f"Python {p.entities['python_version']}" in text
    assert plan.system(p)
    with pytest.raises(IndexError):
        plan.prompt(-1)


def _words_recipe(tmp_path: Path) -> Path:
    """No topic tree, no audience: three word lists, one of them drawn two at a time."""
    for name, words in [("verbs", ["jump", "run", "sing", "eat"]), ("nouns", ["ball", "cat", "dog", "tree", "cup"]),
                        ("features", ["dialogue", "a moral", "a twist", "a bad ending"])]:
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nwords: [{', '.join(words)}]\n")
    r = tmp_path / "r.yaml"
    r.write_text(
        "name: words\n"
        f"taxonomy: {{topics: [], audiences: [], words: {{verb: '{tmp_path / 'verbs.yaml'}', noun: '{tmp_path / 'nouns.yaml'}', "
        f"features: '{tmp_path / 'features.yaml'}'}}, pick: {{features: 2}}}}\n"
        "templates: {extract: 'A story with {{ verb }}, {{ noun }}: {{ features.split(\"; \") | join(\" and \") }}.'}\n"
    )
    return r


def test_word_lists_without_topics_or_audiences(tmp_path):
    r = _words_recipe(tmp_path)
    recipe = load_recipe(str(r))
    plan = Plan(recipe)
    assert plan.primary == "verb" and plan.L == 4
    assert plan.combinations == 4 * 5 * 6  # verbs x nouns x pairs of 4 features
    prompts = [plan.prompt(i) for i in range(plan.combinations)]
    assert list(prompts[0].entities) == ["verb", "noun", "features"]
    assert "topic" not in prompts[0].context and "audience_description" not in prompts[0].context
    # Every combination once; each verb in every round; two distinct features per prompt.
    assert len({_combo(p) for p in prompts}) == plan.combinations
    assert set(Counter(p.entities["verb"] for p in prompts).values()) == {30}
    pair = prompts[0].entities["features"].split("; ")
    assert len(set(pair)) == 2 and f"{pair[0]} and {pair[1]}" in plan.render(prompts[0])
    cov = plan.coverage(40)
    assert (cov["primary"], cov["leaves_covered"], cov["pairs"]) == ("verb", 4, 20)
    assert set(cov["axes"]) == {"noun", "features"}
    # The word lists are part of the recipe's hash.
    before = recipe.hash
    (tmp_path / "nouns.yaml").write_text("name: nouns\nwords: [ball, cat, dog, tree, hat]\n")
    assert load_recipe(str(r)).hash != before


def test_a_bad_word_list_names_file_and_entry(tmp_path):
    r = _words_recipe(tmp_path)
    (tmp_path / "nouns.yaml").write_text("name: nouns\nwords: [ball, cat, Balls]\n")
    with pytest.raises(ConfigError, match=r"nouns.yaml:2.*words\[2\].*near-identical to 'ball'"):
        load_recipe(str(r))
    (tmp_path / "nouns.yaml").write_text("name: nouns\nwords: [ball]\n")
    with pytest.raises(ConfigError, match="taxonomy.pick.features: 5 words from a list of 4"):
        load_recipe(str(r), {"taxonomy.pick.features": 5})
