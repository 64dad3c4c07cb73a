import argparse
import json
import subprocess
import sys

import pytest

from corpus.cli import main
from corpus.cli.common import parse_tokens


@pytest.mark.parametrize(
    "text, value",
    [("1e9", 10**9), ("1_000_000", 10**6), ("500M", 5 * 10**8), ("2B", 2 * 10**9), ("20k", 20_000), ("1.5e3", 1500), ("12345", 12345)],
)
def test_parse_tokens(text, value):
    assert parse_tokens(text) == value


@pytest.mark.parametrize("text", ["", "ten", "1e", "5X", "-3", "0", "0.5", "1.2.3"])
def test_parse_tokens_rejects_with_what_is_accepted(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected .*1e9, 1_000_000, 500M, 2B"):
        parse_tokens(text)


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_topics_json(capsys):
    out = _json(capsys, ["topics", "--json"])
    assert out["leaves"] > 0 and out["audiences"] > 0
    assert out["combinations"] == out["leaves"] * out["audiences"] * 3 * 5 * 3 * 2 * 7  # position feature version snippets opening
    assert sum(out["branches"].values()) == out["leaves"]


@pytest.mark.parametrize("tokens, repeats", [("1e9", False), ("1e10", True)])
def test_plan_json_for_a_billion_tokens(capsys, tokens, repeats):
    out = _json(capsys, ["plan", "--tokens", tokens, "--json"])
    t = int(float(tokens))
    assert out["prompts"] == -(-(-(-t // 600)) * 10 // 8)  # ceil(ceil(tokens/600)/0.8)
    assert out["leaves_covered"] == out["leaves"]
    assert out["max_per_leaf"] - out["min_per_leaf"] <= 1
    # Every combination is used once before any repeats (see corpus.plan): 1e9 tokens need fewer
    # prompts than there are combinations (17.2M), 1e10 more, and then exactly the excess repeats.
    assert (out["prompts"] > out["combinations"]) == repeats
    assert out["combinations_covered"] == min(out["prompts"], out["combinations"])
    assert out["repeated_combinations"] == max(0, out["prompts"] - out["combinations"])
    assert out["gpu_hours"] > 0 and out["api_cost_usd"] > 0
    assert len(out["examples"]) == 3 and out["examples"][0]["id"].endswith("-0")


def test_prompts_range_json(capsys):
    assert main(["prompts", "--range", "5:8", "--json", "--seed", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in rows] == [5, 6, 7]
    assert all(r["prompt"] and r["topic"] and r["audience"] for r in rows)


def test_console_script_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "corpus", "plan", "--tokens", "lots"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid token count 'lots'" in r.stderr
    bad = tmp_path / "r.yaml"
    bad.write_text("name: r\ntemplates: {extract: x}\nsed: 1\n")
    r = subprocess.run([sys.executable, "-m", "corpus", "topics", "--recipe", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{bad}:3: sed: unknown key" in r.stderr


@pytest.mark.parametrize(
    "recipe, entities, stage",
    [
        ("tinystories", ["verb", "noun", "adjective", "features"], "prompt"),
        ("exercises", ["topic", "audience", "difficulty"], "prompt"),
        ("textbooks-outline", ["topic", "audience", "feature"], "outline_prompt"),
    ],
)
def test_prompts_of_the_method_recipes_show_their_entities(capsys, recipe, entities, stage):
    assert main(["prompts", "--recipe", recipe, "--range", "0:4", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4
    for r in rows:
        assert set(r) == {"id", "index", "seed", "system", stage, *entities}
        assert all(r[e] for e in entities)
    if recipe == "tinystories":  # one verb, noun and adjective, two distinct features, all in the prompt
        for r in rows:
            a, b = r["features"].split("; ")
            assert a != b and all(w in r["prompt"] for w in (f'"{r["verb"]}"', f'"{r["noun"]}"', f'"{r["adjective"]}"', f"{a}, {b}"))
        assert len({r["noun"] for r in rows}) == 4
