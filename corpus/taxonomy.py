"""Topic trees and audiences: the entity lists every prompt combines.

A topic file (``topics/*.yaml``)::

    name: python-cs
    description: what the tree covers
    provenance: hand-curated | expanded by MODEL from FILE on DATE
    tree:
      Algorithms:                 # branch
        Sorting:                  # sub-branch (a mapping)...
          - Insertion sort        # ...or a list of leaves: specific, teachable concepts
          - Stability of a sort
          - Merge sort: [Merging two sorted lists, Bottom-up merge sort]   # a list item with children: a sub-branch
    expansions:                   # optional: where each leaf added by ``corpus topics expand`` came from
      Algorithms > Sorting > Merge sort > Merging two sorted lists: {model: M, date: D, parent: Merge sort, prompt_sha256: 12 hex}

A word list (``words/*.yaml``; entities that are single words, e.g. TinyStories' vocabularies)::

    name: tinystories-nouns
    description: what the list holds and how it was compiled
    provenance: hand-curated on DATE
    words: [ball, dog, ...]      # no duplicates, no near-identical entries (same rule as siblings)

An audience file (``audiences/*.yaml``)::

    audiences:
      - name: curious high-school student
        description: who they are, what they know, the tone and depth that suit them
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from corpus.config import ConfigError, Located, build, format_path, load_yaml

SEP = " > "


def builtin_path(package: str, name: str) -> Path | None:
    """The shipped file ``name`` (.yaml) of ``corpus.<package>``, if there is one."""
    res = resources.files(f"corpus.{package}").joinpath(f"{name}.yaml")
    return Path(str(res)) if res.is_file() else None


def builtin_names(package: str) -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(f"corpus.{package}").iterdir() if p.name.endswith(".yaml"))


def resolve(package: str, ref: str) -> Path:
    """A built-in name (``python-cs``) or a path to a YAML file."""
    p = builtin_path(package, ref)
    if p is not None:
        return p
    path = Path(ref)
    if path.is_file():
        return path
    raise ConfigError(f"{ref}: no such {package[:-1]} file and no built-in of that name (built-ins: {', '.join(builtin_names(package))})")


def _norm(name: str) -> str:
    """Sibling names equal under this are near-identical ("Loops" vs "loop", "for-loops" vs
    "For loops", "The heap" vs "Heaps"). Operator symbols are kept: "a == b" differs from "a != b"."""
    words = re.sub(r"[\s\-,.;:'\"()]+", " ", name.lower()).split()
    words = [w for w in words if w not in ("a", "an", "the")]
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


@dataclass(frozen=True)
class Taxonomy:
    """Leaves in file order; each a path from branch to leaf."""

    leaves: tuple[tuple[str, ...], ...]
    sources: tuple[str, ...]
    digest: str  # sha256 of the files' contents: changes when the tree changes
    expansions: dict[str, dict] = field(default_factory=dict)
    """Provenance of the nodes an expansion added, by full path (the files' ``expansions``)."""

    def path(self, i: int) -> str:
        return SEP.join(self.leaves[i])

    def branch_counts(self, depth: int = 1) -> dict[str, int]:
        out: dict[str, int] = {}
        for leaf in self.leaves:
            key = SEP.join(leaf[:depth])
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def max_depth(self) -> int:
        return max((len(leaf) for leaf in self.leaves), default=0)

    @property
    def min_depth(self) -> int:
        return min((len(leaf) for leaf in self.leaves), default=0)


KEYS = ("name", "description", "provenance", "tree", "expansions")


def load_topics(refs: list[str]) -> Taxonomy:
    leaves: list[tuple[str, ...]] = []
    seen: dict[str, str] = {}  # top branch -> file
    expansions: dict[str, dict] = {}
    sources, digest = [], hashlib.sha256()
    for ref in refs:
        path = resolve("topics", ref)
        loc = load_yaml(path)
        digest.update(path.read_bytes())
        sources.append(str(path))
        data = loc.data
        if not isinstance(data, dict):
            raise ConfigError(f"{loc.where(())}: expected a mapping with keys {', '.join(KEYS)}")
        for k in data:
            if k not in KEYS:
                raise ConfigError(f"{loc.where((k,))}: {k}: unknown key (expected one of: {', '.join(KEYS)})")
        tree = data.get("tree")
        if not isinstance(tree, dict) or not tree:
            raise ConfigError(f"{loc.where(('tree',))}: tree: expected a non-empty mapping of branches")
        for branch in tree:
            if branch in seen:
                raise ConfigError(f"{loc.where(('tree', branch))}: tree.{branch}: duplicate path (also in {seen[branch]})")
            seen[branch] = str(path)
        start = len(leaves)
        _walk(tree, ("tree",), (), loc, leaves)
        nodes = {SEP.join(leaf[:n]) for leaf in leaves[start:] for n in range(1, len(leaf) + 1)}
        expansions.update(_expansions(data.get("expansions", {}), nodes, loc))
    return Taxonomy(tuple(leaves), tuple(sources), digest.hexdigest(), expansions)


def _expansions(data, nodes: set[str], loc: Located) -> dict[str, dict]:
    """A file's ``expansions``: full path -> provenance mapping; every key a node of the file's tree
    (a leaf, or a branch when a later expansion grew children under it)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{loc.where(('expansions',))}: expansions: expected a mapping of leaf paths to provenance")
    for path, value in data.items():
        if path not in nodes:
            raise ConfigError(f"{loc.where(('expansions', path))}: expansions: {path}: not a node of the tree")
        if not isinstance(value, dict):
            raise ConfigError(f"{loc.where(('expansions', path))}: expansions: {path}: expected a mapping (model, date, parent, prompt_sha256)")
    return data


def _walk(node, key: tuple, path: tuple[str, ...], loc: Located, out: list) -> None:
    where = loc.where(key)
    name = SEP.join(path) or "tree"
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        # A list holds leaves, and sub-branches written as one-key mappings (``- Merge sort: [...]``).
        items = [next(iter(v.items())) if isinstance(v, dict) and len(v) == 1 else (v, None) for v in node]
    else:
        raise ConfigError(f"{where}: {name}: expected a mapping of sub-topics or a list of leaf topics, got {type(node).__name__} {node!r:.40}")
    children = [k for k, _ in items]
    if not items:
        raise ConfigError(f"{where}: {name}: empty node (expected at least one sub-topic or leaf)")
    normed: dict[str, str] = {}
    for i, child in enumerate(children):
        ckey = key + ((child,) if isinstance(node, dict) else (i,))
        if not isinstance(child, str) or not child.strip():
            raise ConfigError(f"{loc.where(ckey)}: {name}: expected a topic name (non-empty string), got {child!r:.40}")
        if ">" in child or child != child.strip():
            raise ConfigError(f"{loc.where(ckey)}: {name} > {child}: topic names may not contain '>' or surrounding spaces")
        n = _norm(child)
        if n in normed:
            kind = "duplicate path" if normed[n] == child else f"near-identical to sibling {normed[n]!r}"
            raise ConfigError(f"{loc.where(ckey)}: {SEP.join(path + (child,))}: {kind}")
        normed[n] = child
    for i, (child, sub) in enumerate(items):
        if isinstance(node, list) and not isinstance(node[i], dict):
            out.append(path + (child,))
            continue
        ckey = key + ((child,) if isinstance(node, dict) else (i, child))
        if sub is None:
            raise ConfigError(f"{loc.where(ckey)}: {SEP.join(path + (child,))}: empty node (expected sub-topics or leaves)")
        _walk(sub, ckey, path + (child,), loc, out)


@dataclass
class Audience:
    name: str
    """Short label used in the record's ``audience`` column."""
    description: str
    """Who they are, what they already know, the tone and depth that suit them (goes into the prompt)."""

    def validate(self):
        if not self.name.strip():
            yield ("name", "must not be empty")
        if len(self.description.split()) < 5:
            yield ("description", "expected a description of at least a few words")


@dataclass
class AudienceFile:
    audiences: list[Audience]
    description: str = ""

    def validate(self):
        if not self.audiences:
            yield ("audiences", "expected at least one audience")
        seen = set()
        for i, a in enumerate(self.audiences):
            if a.name in seen:
                yield (("audiences", i, "name"), f"duplicate audience {a.name!r}")
            seen.add(a.name)


@dataclass(frozen=True)
class Audiences:
    items: tuple[Audience, ...]
    digest: str

    def __len__(self):
        return len(self.items)


def load_audiences(refs: list[str]) -> Audiences:
    items: list[Audience] = []
    digest = hashlib.sha256()
    names: set[str] = set()
    for ref in refs:
        path = resolve("audiences", ref)
        loc = load_yaml(path)
        digest.update(path.read_bytes())
        f = build(AudienceFile, loc.data, loc)
        for i, a in enumerate(f.audiences):
            if a.name in names:
                raise ConfigError(f"{loc.where(('audiences', i))}: {format_path(('audiences', i))}: duplicate audience {a.name!r}")
            names.add(a.name)
            items.append(a)
    return Audiences(tuple(items), digest.hexdigest())


@dataclass
class WordFile:
    name: str
    """The list's name (its file name without .yaml, by convention)."""
    words: list[str]
    """The entries: non-empty, no duplicates, none near-identical to another (as sibling topics)."""
    description: str = ""
    """What the list holds and how it was compiled."""
    provenance: str = ""
    """Who or what made it, and when."""

    def validate(self):
        if not self.words:
            yield ("words", "expected at least one word")
        normed: dict[str, str] = {}
        for i, w in enumerate(self.words):
            if not w.strip() or w != w.strip():
                yield (("words", i), f"expected a non-empty entry without surrounding spaces, got {w!r}")
                continue
            n = _norm(w)
            if n in normed:
                yield (("words", i), "duplicate word" if normed[n] == w else f"{w!r} is near-identical to {normed[n]!r}")
            normed[n] = w


@dataclass(frozen=True)
class WordList:
    name: str
    words: tuple[str, ...]
    source: str
    digest: str


def load_words(ref: str) -> WordList:
    path = resolve("words", ref)
    loc = load_yaml(path)
    f = build(WordFile, loc.data, loc)
    return WordList(f.name, tuple(f.words), str(path), hashlib.sha256(path.read_bytes()).hexdigest())
