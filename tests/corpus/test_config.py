"""Validation of recipes, topic trees and audiences: errors name file, line, key and expectation."""

from pathlib import Path

import pytest

from corpus.config import ConfigError
from corpus.recipe import load_recipe
from corpus.taxonomy import load_audiences, load_topics

AUD = "audiences:\n  - {name: student, description: A student who knows loops and functions already.}\n"


def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _recipe(tmp_path, body: str) -> str:
    return _write(tmp_path, "r.yaml", "name: r\ntemplates: {extract: 'x {{ leaf }}'}\n" + body)


def _error(fn, *args) -> str:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return str(e.value)


def test_recipe_unknown_key_names_file_line_and_key(tmp_path):
    path = _recipe(tmp_path, "sampling:\n  temperature: 0.7\n  temprature: 0.9\n")
    msg = _error(load_recipe, path)
    assert f"{path}:5: sampling.temprature: unknown key" in msg
    assert "temperature" in msg  # lists what is expected


def test_recipe_wrong_types_all_reported_at_once(tmp_path):
    path = _recipe(tmp_path, "seed: abc\nchunk_size: 1.5\nsampling: {temperature: hot}\n")
    msg = _error(load_recipe, path)
    assert f"{path}:3: seed: expected an integer, got str 'abc'" in msg
    assert f"{path}:4: chunk_size: expected an integer" in msg
    assert f"{path}:5: sampling.temperature: expected a number" in msg


def test_recipe_semantic_checks(tmp_path):
    msg = _error(load_recipe, _recipe(tmp_path, "axes: {text: [a], style: []}\nsampling: {top_p: 0}\n"))
    assert "axes.text: axis name clashes with a record column" in msg
    assert "axes.style: expected at least one value" in msg
    assert "sampling.top_p: expected a value in (0, 1]" in msg


def test_recipe_missing_and_unknown_refs(tmp_path):
    assert "templates.extract: missing required key" in _error(load_recipe, _write(tmp_path, "m.yaml", "name: m\ntemplates: {}\n"))
    assert "no built-in recipe of that name" in _error(load_recipe, "no-such-recipe")
    msg = _error(load_recipe, _recipe(tmp_path, "taxonomy: {topics: [nope]}\n"))
    assert "nope: no such topic file" in msg


def test_duplicate_yaml_key(tmp_path):
    msg = _error(load_recipe, _recipe(tmp_path, "seed: 1\nseed: 2\n"))
    assert "r.yaml:4: seed: duplicate key (first at line 3)" in msg


def test_malformed_yaml(tmp_path):
    msg = _error(load_topics, [_write(tmp_path, "t.yaml", "tree:\n  A: [unclosed\n")])
    assert "t.yaml:" in msg and "not valid YAML" in msg


@pytest.mark.parametrize(
    "tree, expected",
    [
        ("  A:\n    B: []\n", "t.yaml:3: A > B: empty node"),
        ("  A:\n    B:\n", "t.yaml:3: A > B: empty node"),
        ("  A:\n    B: [x, y, x]\n", "t.yaml:3: A > B > x: duplicate path"),
        ("  A:\n    B: [For loops, for-loop]\n", "A > B > for-loop: near-identical to sibling 'For loops'"),
        ("  A:\n    B: [x, 3]\n", "A > B: expected a topic name (non-empty string), got 3"),
        ("  A:\n    B: [x > y]\n", "topic names may not contain '>'"),
        ("  A: leaf\n", "t.yaml:2: A: expected a mapping of sub-topics or a list of leaf topics"),
    ],
)
def test_topic_tree_errors(tmp_path, tree, expected):
    msg = _error(load_topics, [_write(tmp_path, "t.yaml", "tree:\n" + tree)])
    assert expected in msg


def test_topic_file_unknown_key_and_duplicate_branch_across_files(tmp_path):
    msg = _error(load_topics, [_write(tmp_path, "t.yaml", "name: t\ncolour: red\ntree: {A: {B: [x]}}\n")])
    assert "t.yaml:2: colour: unknown key" in msg
    a = _write(tmp_path, "a.yaml", "tree: {A: {B: [x]}}\n")
    b = _write(tmp_path, "b.yaml", "tree:\n  A: {C: [y]}\n")
    assert "b.yaml:2: tree.A: duplicate path (also in" in _error(load_topics, [a, b])


def test_audience_errors(tmp_path):
    ok = load_audiences([_write(tmp_path, "a.yaml", AUD)])
    assert len(ok) == 1
    msg = _error(load_audiences, [_write(tmp_path, "b.yaml", "audiences:\n  - name: x\n")])
    assert "b.yaml:2: audiences[0].description: missing required key" in msg
    msg = _error(load_audiences, [_write(tmp_path, "c.yaml", AUD + "  - {name: student, description: again the same student as above here.}\n")])
    assert "audiences[1].name: duplicate audience 'student'" in msg
    msg = _error(load_audiences, [_write(tmp_path, "d.yaml", "audiences:\n  - {name: x, description: short, age: 3}\n")])
    assert "audiences[0].age: unknown key" in msg


def test_resolved_recipe_round_trips_with_its_hash(tmp_path):
    r = load_recipe("textbooks", {"seed": 5})
    path = _write(tmp_path, "resolved.yaml", r.to_yaml())
    again = load_recipe(path)
    assert again.hash == r.hash and again.seed == 5
    assert load_recipe("textbooks").hash != r.hash
