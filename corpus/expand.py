"""Taxonomy expansion by the teacher: ``corpus topics expand``.

The method's entities are "generated beforehand by the LLM itself": for every leaf of a topic
tree (or of one branch), one chat request asks the teacher for K narrower concepts. The answers
are parsed (``parse_list``), normalised and filtered with a counted reason for every drop
(``select``), and each leaf that gains children becomes a sub-branch (``- Leaf: [child, ...]``)
of a new topic file that ``corpus.taxonomy.load_topics`` loads and validates like any other. The
file says where it came from: ``provenance`` (model, date, source, settings) and ``expansions``
(one entry per added leaf: model, date, parent, prompt_sha256).

Resumable like ``corpus generate``: the answer of every leaf is appended to ``OUT.partial`` (JSONL,
the settings on its first line) as its batch completes; rerunning the same command asks only for
the leaves it lacks, and a partial made with other settings is refused. Children are chosen from
the saved answers at the end, in file order, so a resumed run writes the same file as an
uninterrupted one; OUT is then written atomically and the partial removed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

import yaml

from corpus.config import ConfigError
from corpus.engines import Engine, Request, make_engine
from corpus.io import atomic_path
from corpus.plan import mix64
from corpus.progress import Progress
from corpus.settings import EngineConfig
from corpus.taxonomy import SEP, _norm, load_topics, resolve

BATCH = 64  # requests per engine.generate call: one partial write each
MAX_WORDS = 12  # too_long: a concept name, not a sentence
MAX_SIBLINGS = 20  # neighbours shown in the prompt (the rest only lengthen it)
REASONS = ("empty", "bad_character", "too_long", "not_a_concept", "truncated", "restates_parent", "near_identical_sibling",
           "duplicate_in_tree", "over_limit")
SETTINGS = ("model", "seed", "per_leaf", "source_sha256")  # what a partial must share with the run resuming it

PROMPT = """You are extending a taxonomy of Python and computer-science topics for short textbook sections.

Topic path: {path}
Topics next to it: {siblings}

List {k} narrower concepts under "{leaf}": each specific, teachable in one short section with a Python snippet, and different from the topics next to it. One per line, numbered, a name of at most 8 words, no explanations."""

# Words that add nothing to a parent's name: "Insertion sort in Python" restates "Insertion sort"
# (normalised forms, see corpus.taxonomy._norm).
FILLER = frozenset("in of on for with to and using python basic introduction overview example concept usage explained "
                   "fundamental how what is work".split())

# not_a_concept: a line of code ("n = len(arr)", "return arr", "a.append(1)"), a placeholder ("Topic 1",
# "Topic path"), a URL, a question, a list marker left inside the item ("1. Pruning"), or the request echoed
# back ("List 3 narrower concepts under ..."): all seen in the embedded teacher's answers.
_NOT_A_CONCEPT = re.compile(r"[=\[\]{}]|\w\(|^(?:return|print|import|from|def|class|for|while|if)\b|"
                            r"^(?:topic|concept|subtopic|item)s?(?:\s+(?:\d+|path|name))?$|://|\bwww\.|\?$|^\d+[.)]?\s|"
                            r"\bnarrower concepts?\b|\bshort section\b|\btopics? (?:path|next to it)\b|\bno explanations?\b",
                            re.IGNORECASE)
_MARKER = re.compile(r"(?:\d+(?:\.\d+)+\.?|\d+[.)]|\(\d+\)|[-*•+])(?:\s+|$)")  # 1. 1) 1.2 (1) - * • +
_INTRO = re.compile(r"(?:here(?:'s| is| are)|sure|certainly|of course|okay|below|the following|these are)\b", re.I)
_EXPLANATION = re.compile(r":\s|\s[-–—]\s")  # "Name: why" / "Name - why"


def parse_list(text: str) -> list[str]:
    """The items of a list answer, in order. Numbered (``1.``, ``1)``) and bulleted (``-``, ``*``,
    ``•``) lines are items, with bold markers and backticks removed and a trailing explanation
    (after ``: `` or `` - ``) cut; an unmarked line is an item only if it reads like a name (at most
    8 words, no closing punctuation, not an intro). Headings (``#``, a line ending with ``:``) and
    code fences are skipped. An item may come out empty (``select`` counts it)."""
    items = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "```")):
            continue
        m = _MARKER.match(line)
        body = re.sub(r"\*\*|__|`", "", line[m.end():] if m else line).strip()
        if body.endswith(":"):
            continue
        if not m and (len(body.split()) > 8 or body.endswith((".", "!", "?")) or _INTRO.match(body)):
            continue
        items.append(_EXPLANATION.split(body, maxsplit=1)[0].strip(" .,;\"'"))
    return items


def _restates(item: str, parent: str) -> bool:
    """The item's words are all in the parent's name, or are the parent's plus filler words only."""
    a, b = set(_norm(item).split()), set(_norm(parent).split())
    return a <= b or (b <= a and a - b <= FILLER)


def select(items: list[str], parent: str, k: int, taken: set[str], rejected: Counter) -> list[str]:
    """At most ``k`` of ``items`` as the new children of the leaf ``parent``; each drop is counted
    in ``rejected`` under its reason (``REASONS``). ``taken`` holds the normalised name of every node
    of the tree; the kept children are added to it. Near-identity is the loader's sibling rule
    (equal ``_norm``), so the output always loads."""
    kept: list[str] = []
    mine: set[str] = set()
    for item in items:
        n = _norm(item)
        if len(kept) == k:
            reason = "over_limit"
        elif not n:
            reason = "empty"
        elif ">" in item:  # the path separator may not appear in a name
            reason = "bad_character"
        elif len(item.split()) > MAX_WORDS:
            reason = "too_long"
        elif _NOT_A_CONCEPT.search(item):
            reason = "not_a_concept"
        elif _restates(item, parent):
            reason = "restates_parent"
        elif n in mine:
            reason = "near_identical_sibling"
        elif n in taken:
            reason = "duplicate_in_tree"
        else:
            kept.append(item)
            mine.add(n)
            continue
        rejected[reason] += 1
    taken |= mine
    return kept


def leaf_seed(seed: int, path: str) -> int:
    """The request seed of the leaf at ``path``: a function of the run's seed and the path only."""
    h = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "little")
    return mix64(mix64(seed) ^ h) & 0x7FFFFFFF


def prompt(leaf: tuple[str, ...], siblings, k: int) -> str:
    """The request for ``leaf``: its path, up to MAX_SIBLINGS of its ``siblings`` (names), ``k``."""
    near = [s for s in siblings if s != leaf[-1]][:MAX_SIBLINGS]
    return PROMPT.format(path=SEP.join(leaf), siblings="; ".join(near) or "none", k=k, leaf=leaf[-1])


def _resume(partial: Path, settings: dict) -> tuple[dict[str, dict], str | None]:
    """The answers saved in ``partial`` by leaf path, and the date the run began; refuses a partial
    made with other settings. A last line cut off by a kill is dropped from the file."""
    if not partial.is_file():
        return {}, None
    raw = partial.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        with open(partial, "r+b") as f:
            f.truncate(end)
    lines = raw[:end].decode().splitlines()
    if not lines:
        return {}, None
    theirs = json.loads(lines[0])["settings"]
    diff = [f"{k} {theirs.get(k)!r} (now {settings[k]!r})" for k in SETTINGS if theirs.get(k) != settings[k]]
    if diff:
        raise ConfigError(f"{partial} is the partial result of another expansion: {', '.join(diff)}. "
                          "Rerun with the same source, --model, --seed and --per-leaf, or delete it to start over.")
    rows = (json.loads(line) for line in lines[1:])
    return {r["leaf"]: r for r in rows}, theirs["date"]


class _Flow(list):
    """A list YAML writes inline: the new children, ``- Leaf: [a, b, c]``."""


class _FlowMap(dict):
    """A mapping YAML writes inline: one line per entry of ``expansions``."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))


def _graft(node, path: tuple[str, ...], children: dict[tuple, list[str]], inline: bool = False):
    """The tree ``node`` with every leaf in ``children`` turned into a sub-branch of its new children.
    ``inline``: ``node`` is a list item's sub-branch, written ``[a, b]`` while it holds only leaves."""
    if isinstance(node, dict):
        return {k: _graft(v, path + (k,), children) for k, v in node.items()}
    out = []
    for item in node:
        if isinstance(item, dict):
            ((name, sub),) = item.items()
            out.append({name: _graft(sub, path + (name,), children, inline=True)})
        elif path + (item,) in children:
            out.append({item: _Flow(children[path + (item,)])})
        else:
            out.append(item)
    return _Flow(out) if inline and all(isinstance(x, str) for x in out) else out


def _ask(engine: Engine, leaves: list[tuple], siblings: dict[tuple, dict], seed: int, k: int, f, done: dict) -> list[str]:
    """One request per leaf; each answer appended to the partial file ``f`` (flushed and synced) and
    to ``done``. Returns the errors of the requests that failed (those leaves stay unanswered)."""
    users = [prompt(leaf, siblings[leaf[:-1]], k) for leaf in leaves]
    seeds = [leaf_seed(seed, SEP.join(leaf)) for leaf in leaves]
    reqs = [Request(messages=[{"role": "user", "content": u}], max_tokens=64 + 32 * k, seed=s) for u, s in zip(users, seeds)]
    errors = []
    for leaf, user, s, o in zip(leaves, users, seeds, engine.generate(reqs)):
        if o.finish_reason == "error":
            errors.append(f"{SEP.join(leaf)}: {o.error}")
            continue
        row = {"leaf": SEP.join(leaf), "seed": s, "prompt_sha256": hashlib.sha256(user.encode()).hexdigest()[:12],
               "finish_reason": o.finish_reason, "text": o.text}
        f.write(json.dumps(row) + "\n")
        done[row["leaf"]] = row
    f.flush()
    os.fsync(f.fileno())
    return errors


def expand(topics: str, engine: Engine | EngineConfig, *, out: str | os.PathLike, per_leaf: int = 3, seed: int = 0,
           branch: str | None = None, max_leaves: int | None = None, log=print) -> dict:
    """Expand the leaves of the topic file ``topics`` (a built-in name or a path), or those under
    ``branch`` ("A > B"; the first ``max_leaves`` of them), by up to ``per_leaf`` children each, and
    write the new topic file ``out``. ``engine``: an engine, or the settings of one to build (only
    when some leaf is still unanswered) and close here. Returns the counts: leaves before and after, requests made,
    children accepted, rejections by reason. When requests failed (after the engine's retries) the
    answered leaves stay in ``OUT.partial``, ``out`` is not written and ``complete`` is False:
    rerun to retry them."""
    if per_leaf < 1 or (max_leaves is not None and max_leaves < 1):
        raise ConfigError("--per-leaf and --max-leaves take a positive integer")
    source = resolve("topics", topics)
    tax = load_topics([str(source)])
    chosen = list(tax.leaves)
    if branch:
        want = tuple(part.strip() for part in branch.split(">"))
        chosen = [leaf for leaf in chosen if leaf[: len(want)] == want]
        if not chosen:
            raise ConfigError(f"--branch {branch}: no leaf of {source} under it (branches: {', '.join(tax.branch_counts(1))})")
    chosen = chosen[:max_leaves]
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    settings = {"model": engine.model, "seed": seed, "per_leaf": per_leaf, "source": topics,
                "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    done, date = _resume(partial, settings)
    settings["date"] = date or datetime.date.today().isoformat()
    todo = [leaf for leaf in chosen if SEP.join(leaf) not in done]
    if done:
        log(f"resuming from {partial}: {len(chosen) - len(todo)} of {len(chosen)} leaves already answered")

    siblings: dict[tuple, dict[str, None]] = {}  # node path -> its children's names, in file order
    for leaf in tax.leaves:
        for d in range(len(leaf)):
            siblings.setdefault(leaf[:d], {})[leaf[d]] = None
    stats = {"source": topics, "out": str(out), "model": engine.model, "seed": seed, "per_leaf": per_leaf,
             "leaves_before": len(tax.leaves), "leaves_after": len(tax.leaves), "selected": len(chosen),
             "resumed": len(chosen) - len(todo), "requests": 0, "failed": 0, "expanded": 0, "accepted": 0,
             "rejected": dict.fromkeys(REASONS, 0), "complete": False}
    error = None
    partial.parent.mkdir(parents=True, exist_ok=True)
    own = isinstance(engine, EngineConfig) and bool(todo)
    if own:  # built only when there is work: a vLLM start takes minutes
        engine = make_engine(engine)
    try:
        with open(partial, "a") as f, Progress("topics expand", total=len(chosen), unit="leaves", initial=stats["resumed"]) as bar:
            if f.tell() == 0:
                f.write(json.dumps({"settings": settings}) + "\n")
            for i in range(0, len(todo), BATCH):
                batch = todo[i : i + BATCH]
                errors = _ask(engine, batch, siblings, seed, per_leaf, f, done)
                error = error or (errors[0] if errors else None)
                stats["requests"] += len(batch)
                stats["failed"] += len(errors)
                bar.update(len(batch), f"{stats['failed']} failed so far")
    finally:
        if own:
            engine.close()
    if stats["failed"]:
        log(f"{stats['failed']} of {stats['requests']} requests failed (first: {error}); the answered leaves are "
            f"kept in {partial}: rerun the same command to retry the others")
        return stats

    taken = {_norm(name) for leaf in tax.leaves for name in leaf}
    rejected: Counter = Counter()
    children: dict[tuple, list[str]] = {}
    expansions: dict[str, dict] = {}
    for leaf in chosen:
        row = done[SEP.join(leaf)]
        items = parse_list(row["text"])
        if row["finish_reason"] == "length" and items:  # the last line may be cut off
            items.pop()
            rejected["truncated"] += 1
        kept = select(items, leaf[-1], per_leaf, taken, rejected)
        if kept:
            children[leaf] = kept
            for child in kept:
                expansions[SEP.join(leaf + (child,))] = {"model": engine.model, "date": settings["date"], "parent": leaf[-1],
                                                         "prompt_sha256": row["prompt_sha256"]}
    stats["expanded"], stats["accepted"] = len(children), len(expansions)
    stats["leaves_after"] = len(tax.leaves) - len(children) + len(expansions)
    stats["rejected"].update(rejected)

    data = yaml.safe_load(source.read_text())
    what = f"{per_leaf} per leaf, seed {seed}, {len(children)} of {len(chosen)} leaves" + (f" under {branch}" if branch else "")
    doc = {
        "name": out.name.removesuffix(".yaml"),
        "description": data.get("description", ""),
        "provenance": f"expanded by {engine.model} from {topics} on {settings['date']} ({what}); "
                      f"source provenance: {data.get('provenance', 'not given')}",
        "tree": _graft(data["tree"], (), children),
        "expansions": {path: _FlowMap(e) for path, e in {**data.get("expansions", {}), **expansions}.items()},
    }
    with atomic_path(out) as tmp:
        # No line wrapping: one line per sub-branch and per expansions entry.
        tmp.write_text(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**9))
        got = load_topics([str(tmp)])  # the file must load and validate like any topic file
        if len(got.leaves) != stats["leaves_after"]:
            raise RuntimeError(f"bug: {out} has {len(got.leaves)} leaves, expected {stats['leaves_after']}")
    partial.unlink()
    stats["complete"] = True
    return stats
