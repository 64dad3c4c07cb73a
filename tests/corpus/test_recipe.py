"""Recipe inheritance (``base:``), the built-in recipes, and the documentation of every recipe key."""

import dataclasses
import hashlib
import inspect
import json
import typing
from pathlib import Path

import pytest
import yaml

import corpus.settings
from corpus.settings import GateConfig
from corpus.config import ConfigError, deep_merge, field_docs
from corpus.recipe import Recipe, builtin_recipes, format_keys, load_recipe, recipe_keys
from corpus.run import RunDir, recipe_diff

BASE = """\
name: base
templates:
  system: You are a teacher.
  extract: 'Write about {{ leaf }}.'
axes:
  position: [opening, closing]
  level: [easy, hard]
sampling:
  temperature: 0.5
  top_p: 0.9
gate:
  skip: [repetition, too_short]
  max_words: 900
"""


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _error(fn, *args) -> str:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return str(e.value)


@pytest.fixture
def base(tmp_path) -> str:
    return _write(tmp_path / "base.yaml", BASE)


def test_deep_merge_overrides_only_named_keys(tmp_path, base):
    child = load_recipe(_write(tmp_path / "child.yaml", "base: base.yaml\nname: child\nsampling: {temperature: 1.2}\ntemplates:\n  extract: 'About {{ leaf }}.'\n"))
    parent = load_recipe(base)
    assert child.name == "child"
    assert child.sampling.temperature == 1.2
    assert child.sampling.top_p == 0.9  # sibling kept from the base
    assert child.templates.extract == "About {{ leaf }}."
    assert child.templates.system == "You are a teacher."
    assert child.gate == parent.gate and child.axes == parent.axes
    assert recipe_diff(parent, child) == ["name", "sampling.temperature", "templates.extract"]


def test_merge_replaces_lists_and_merges_mappings_of_lists(tmp_path, base):
    child = load_recipe(_write(tmp_path / "child.yaml", "base: base.yaml\ngate: {skip: [refusal]}\naxes: {level: [medium]}\n"))
    assert child.gate.skip == ["refusal"]  # replaced, not appended to
    assert child.gate.max_words == 900
    assert child.axes == {"position": ["opening", "closing"], "level": ["medium"]}


def test_deep_merge_function():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 0}
    over = {"a": {"c": [3]}, "e": {"f": 1}}
    assert deep_merge(base, over) == {"a": {"b": 1, "c": [3]}, "d": 0, "e": {"f": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 0}  # inputs untouched
    assert deep_merge({"a": {"b": 1}, "g": 2}, {"a": None}) == {"g": 2}  # null removes the key


def test_null_drops_an_axis_and_restores_a_default(tmp_path, base):
    child = load_recipe(_write(tmp_path / "child.yaml", "base: base.yaml\naxes: {position: null}\ngate: {max_words: null}\n"))
    assert "position" not in child.axes and "level" in child.axes
    assert child.gate.max_words == 2000  # GateConfig's default, not the base's 900


def test_two_level_chain_with_paths_relative_to_each_file(tmp_path, base, monkeypatch):
    _write(tmp_path / "sub" / "mid.yaml", "base: ../base.yaml\nname: mid\nsampling: {top_p: 0.5}\ngate: {max_words: 700}\n")
    leaf = _write(tmp_path / "sub" / "deeper" / "leaf.yaml", "base: ../mid.yaml\nname: leaf\ngate: {max_words: 600}\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # relative bases resolve against the file, not the cwd
    r = load_recipe(leaf)
    assert (r.name, r.sampling.temperature, r.sampling.top_p, r.gate.max_words, r.gate.skip) == ("leaf", 0.5, 0.5, 600, ["repetition", "too_short"])
    # An absolute path and a built-in name work as bases too.
    assert load_recipe(_write(tmp_path / "abs.yaml", f"base: {tmp_path / 'sub' / 'mid.yaml'}\n")).name == "mid"
    smoke2 = load_recipe(_write(tmp_path / "s.yaml", "base: smoke\nseed: 7\n"))
    assert smoke2.seed == 7 and recipe_diff(load_recipe("smoke"), smoke2) == ["seed"]


def test_base_cycles_are_errors(tmp_path):
    a = _write(tmp_path / "a.yaml", "name: a\nbase: b.yaml\n")
    _write(tmp_path / "b.yaml", "name: b\nbase: a.yaml\n")
    msg = _error(load_recipe, a)
    assert f"{tmp_path / 'b.yaml'}:2: base: 'a.yaml' makes a cycle of bases: " in msg
    assert f"{tmp_path / 'a.yaml'} -> {tmp_path / 'b.yaml'} -> {tmp_path / 'a.yaml'}" in msg
    me = _write(tmp_path / "me.yaml", "base: me.yaml\n")
    assert "me.yaml:1: base: 'me.yaml' makes a cycle of bases" in _error(load_recipe, me)


def test_unknown_or_malformed_base(tmp_path):
    child = _write(tmp_path / "child.yaml", "name: c\n\nbase: textbook\n")
    msg = _error(load_recipe, child)
    assert f"{child}:3: base: 'textbook': no built-in recipe of that name (built-ins: {', '.join(builtin_recipes())})" in msg
    assert f"no such file ({tmp_path / 'textbook'})" in msg
    assert "textbooks" in builtin_recipes()
    msg = _error(load_recipe, _write(tmp_path / "list.yaml", "base: [textbooks]\n"))
    assert "list.yaml:1: base: expected a built-in recipe name or a path to a recipe file, got list" in msg


def test_errors_in_the_child_name_its_file_line_and_key(tmp_path, base):
    child = _write(tmp_path / "child.yaml", "base: base.yaml\nsampling:\n  temprature: 0.9\n  top_p: high\ngate: {skip: [nope]}\n")
    msg = _error(load_recipe, child)
    assert f"{child}:3: sampling.temprature: unknown key (expected one of: temperature," in msg
    assert f"{child}:4: sampling.top_p: expected a number, got str 'high'" in msg
    assert f"{child}:5: gate.skip: unknown check 'nope'" in msg


def test_errors_in_a_base_name_the_base_file(tmp_path):
    _write(tmp_path / "bad.yaml", "name: bad\ntemplates: {extract: x}\nseed: many\n")
    msg = _error(load_recipe, _write(tmp_path / "child.yaml", "base: bad.yaml\nseed: 1\n"))
    assert f"{tmp_path / 'bad.yaml'}:3: seed: expected an integer" in msg


def test_combined_checks_point_at_the_file_that_set_each_key(tmp_path):
    _write(tmp_path / "b.yaml", "name: b\ntemplates: {extract: x}\ndedup:\n  num_perm: 64\n  bands: 10\n")
    msg = _error(load_recipe, _write(tmp_path / "c.yaml", "base: b.yaml\ndedup:\n  bands: 20\n"))
    assert f"{tmp_path / 'c.yaml'}:3: dedup.bands: bands x rows = 120 exceeds num_perm = 64" in msg


def test_set_applies_after_the_base(tmp_path, base):
    child = _write(tmp_path / "child.yaml", "base: base.yaml\nsampling: {temperature: 1.2}\n")
    r = load_recipe(child, {"sampling.temperature": 0.1, "sampling.top_p": 0.2, "gate.skip": [], "engine.model": "m"})
    assert (r.sampling.temperature, r.sampling.top_p, r.gate.skip, r.gate.max_words, r.engine.model) == (0.1, 0.2, [], 900, "m")
    assert "--set: sampling.temperature: expected a number, got str 'hot'" in _error(load_recipe, child, {"sampling.temperature": "hot"})
    assert "--set: seed.x: seed is not a mapping" in _error(load_recipe, child, {"seed.x": 1})
    assert "--set: sampling.temp: unknown key" in _error(load_recipe, child, {"sampling.temp": 1})


def test_set_none_removes_the_key_like_null_in_a_file(tmp_path, base):
    child = _write(tmp_path / "child.yaml", "base: base.yaml\ngate: {max_words: 500}\n")
    r = load_recipe(child, {"axes.position": None, "gate.max_words": None, "templates.system": None, "axes.absent": None})
    assert (list(r.axes), r.gate.max_words, r.templates.system) == (["level"], GateConfig().max_words, None)
    assert r.hash == load_recipe(_write(tmp_path / "same.yaml", "base: base.yaml\naxes: {position: null}\ntemplates: {system: null}\ngate: {max_words: null}\n")).hash


# The resolved smoke recipe: sha256 of its to_dict() as sorted JSON, and its hash (which also covers
# the taxonomy files). Pinned when it became a diff on textbooks (f801948706ba, the same as its old
# full copy); re-pinned when sampling.repetition_penalty, gate.reject_dead_code/check_output_claims
# and the meta-talk refusal patterns were added (each a new key or default, so every hash moved);
# and again when textbooks.yaml got its opening axis (a new axis and template line); and when
# taxonomy.words and taxonomy.pick were added; and when gate.exercise and the card section were added;
# and when decontam's thresholds were redone (min_blind_coverage gone; min_coverage 0.6, min_solution_coverage,
# min_renamed_solution, min_renamed_tokens).
SMOKE_DICT_SHA256 = "6a7f0e4f1863bb8c237519d41740c5c156980041679aeb447863ca219f67739d"
SMOKE_HASH = "357cdc7d0a9d"


def test_smoke_recipe_resolves_as_before():
    smoke, textbooks = load_recipe("smoke"), load_recipe("textbooks")
    d = smoke.to_dict()
    assert "base" not in d
    assert hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest() == SMOKE_DICT_SHA256
    assert smoke.hash == SMOKE_HASH
    assert recipe_diff(textbooks, smoke) == [
        "chunk_size", "engine.dtype", "engine.enforce_eager", "gate.skip", "name",
        "sampling.max_tokens", "sampling.temperature", "sampling.top_p",
    ]  # fmt: skip
    text = (Path(corpus.__file__).parent / "recipes" / "smoke.yaml").read_text()
    assert text.startswith("# The smoke recipe:") and "base: textbooks" in text and "\ntemplates:" not in text


def test_frozen_inheriting_recipe_reloads_to_the_same_hash(tmp_path, base):
    child = load_recipe(_write(tmp_path / "child.yaml", "base: base.yaml\nname: child\ngate: {max_words: 500}\n"), {"seed": 3})
    assert "base" not in child.to_dict() and "\nbase:" not in child.to_yaml()
    run = RunDir(tmp_path / "run")
    run.freeze(child)  # raises if the frozen file reloads to another hash
    again = load_recipe(str(run.recipe_path))
    assert again.hash == child.hash and again.to_dict() == child.to_dict()
    run.freeze(load_recipe(str(tmp_path / "child.yaml"), {"seed": 3}))  # the same recipe: accepted
    with pytest.raises(ConfigError, match="differing keys: gate.max_words"):
        run.freeze(load_recipe(str(tmp_path / "child.yaml"), {"seed": 3, "gate.max_words": 400}))
    smoke = load_recipe("smoke")
    RunDir(tmp_path / "smoke-run").freeze(smoke)
    assert load_recipe(str(tmp_path / "smoke-run" / "recipe.yaml")).hash == smoke.hash == SMOKE_HASH


# -- keys ---------------------------------------------------------------------------
def _dataclass_fields(cls, prefix=""):
    """(dotted path, owning class, field) of every field reachable from ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield prefix + f.name, cls, f
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _dataclass_fields(hints[f.name], f"{prefix}{f.name}.")


def _config_classes():
    classes = {Recipe}
    classes |= {c for _, c in inspect.getmembers(corpus.settings, inspect.isclass) if dataclasses.is_dataclass(c) and c.__module__ == "corpus.settings"}
    classes |= {c for _, c, _ in _dataclass_fields(Recipe)}
    return sorted(classes, key=lambda c: c.__name__)


def test_every_config_field_has_a_docstring():
    missing = [f"{cls.__name__}.{f.name}" for cls in _config_classes() for f in dataclasses.fields(cls) if not field_docs(cls).get(f.name, "").strip()]
    assert not missing, f"fields without a docstring (the string literal right under the field): {missing}"
    assert len(_config_classes()) >= 9


def test_field_docs_reads_the_string_under_each_field():
    docs = field_docs(corpus.settings.Templates)
    assert docs["extract"] == "The final request: the textbook extract."
    assert set(docs) == {"extract", "system", "outline"}  # the class docstring is not a field's
    assert field_docs(corpus.settings.EngineConfig)["chat"].startswith("Send chat messages") and "\n" in field_docs(corpus.settings.EngineConfig)["chat"]


def test_recipe_keys_cover_every_field_with_type_default_and_doc(tmp_path):
    keys = recipe_keys()
    by_path = {k.path: k for k in keys}
    assert [k.path for k in keys] == [p for p, _, _ in _dataclass_fields(Recipe)]
    assert all(k.doc for k in keys)
    assert by_path["gate.max_words"][1:3] == ("an integer", "2000")
    assert by_path["sampling.temperature"][1:3] == ("a number", "0.8")
    assert by_path["engine.model"][1:3] == ("a string or null", "null")
    assert by_path["engine.name"][1:3] == ("'vllm' or 'openai'", "vllm")
    assert by_path["name"].default == "required" and by_path["templates.extract"].default == "required"
    assert by_path["sampling"].type == "a mapping" and by_path["sampling"].default == ""
    # Every default is YAML for the real default: setting every key to it (as --set does) changes nothing.
    leaves = {k.path: yaml.safe_load(k.default) for k in keys if k.default not in ("required", "") and k.type != "a mapping"}
    assert leaves["decontam.allow"][6] == "import doctest\ndoctest.testmod()"
    plain = _write(tmp_path / "plain.yaml", "name: n\ntemplates: {extract: x}\n")
    defaults = Recipe(name="n", templates=corpus.settings.Templates(extract="x")).to_dict()
    assert load_recipe(plain).to_dict() == load_recipe(plain, leaves).to_dict() == defaults


def test_format_keys_lists_every_key_once():
    keys = recipe_keys()
    text = format_keys(keys)
    heads = [line for line in text.splitlines() if not line.startswith(" ")]
    assert [h.split("  ")[0] for h in heads] == [k.path for k in keys]
    assert "gate.max_words  (an integer)  default: 2000\n    too_long: most words an extract may have" in text
    assert "name  (a string)  required\n" in text
    assert all(len(line) <= 100 for line in text.splitlines() if line.startswith("    "))
