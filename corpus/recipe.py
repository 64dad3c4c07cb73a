"""Recipes: the whole description of a corpus, validated on load and frozen with a hash.

A recipe names the taxonomies, the extra axes every prompt is forced onto, the prompt
templates of each stage, sampling, engine, gate, dedup and decontamination settings, and
the tokenizer that counts the budget. Built-in recipes ship in ``corpus/recipes``; any
path works too. Unknown keys and wrong types are errors naming the file, line and key.

A recipe may start from another with ``base: NAME`` (a built-in name, which wins over a file
of that name, or a path, relative to the recipe's own file): it takes the base's resolved values (the base may have a base too)
and overrides only the keys it names, merging mappings key by key and replacing lists and
scalars; a key set to null is removed (its default applies again; ``axes: {snippets: null}`` drops
the base's axis). The resolved recipe has no ``base``: what it names is what it is, so its
``to_yaml()`` (the frozen ``recipe.yaml`` of a run) loads back to the same hash.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import yaml

from corpus.config import (
    ConfigError,
    KeyDoc,
    Located,
    LocatedStack,
    build,
    config_keys,
    deep_merge,
    format_keys,  # noqa: F401  (re-exported: the CLI prints format_keys(recipe_keys()))
    load_yaml,
    to_dict,
)
from corpus.records import record_schema
from corpus.settings import (
    CardConfig,
    DecontamConfig,
    DedupConfig,
    EngineConfig,
    GateConfig,
    Sampling,
    TaxonomyConfig,
    Templates,
    TokenCounter,
)
from corpus.taxonomy import Audiences, Taxonomy, WordList, load_audiences, load_topics, load_words

# Columns a recipe axis may not be named after (they exist in every record).
RESERVED = {f.name for f in record_schema()} | {"leaf", "branch", "path", "audience_description"}


@dataclass
class Recipe:
    name: str
    """The recipe's name: shown in run directories, cards and logs, and part of the hash."""
    templates: Templates
    """Jinja2 prompt templates of each stage (system, optional outline, extract)."""
    seed: int = 0
    """Seeds the plan (which entities each prompt combines) and every request's sampling seed."""
    taxonomy: TaxonomyConfig = field(default_factory=TaxonomyConfig)
    """The topic trees and audience lists every prompt draws a leaf and an audience from."""
    axes: dict[str, list[str]] = field(default_factory=dict)
    """Extra axes and their values, e.g. position: [opening, middle, closing]. One record column each
    (after the word lists of ``taxonomy.words``; long lists belong there)."""
    chunk_size: int = 1024
    """Prompts per chunk: the unit of generation, resumption and distribution."""
    sampling: Sampling = field(default_factory=Sampling)
    """Sampling parameters of every request to the teacher model."""
    engine: EngineConfig = field(default_factory=EngineConfig)
    """The inference engine that runs the teacher model (in-process vLLM or an OpenAI-compatible server)."""
    gate: GateConfig = field(default_factory=GateConfig)
    """The quality gate: which checks reject an extract, and their thresholds."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """Near-duplicate removal (MinHash LSH over shingles, confirmed by exact Jaccard similarity)."""
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    """Removal of extracts that overlap evaluation benchmarks (n-gram coverage of their tasks)."""
    tokenizer: TokenCounter = field(default_factory=TokenCounter)
    """The tokenizer that counts the budget and every record's ``n_tokens``."""
    card: CardConfig = field(default_factory=CardConfig)
    """What the dataset card says the corpus is (description, tags)."""

    def validate(self):
        for name in self.taxonomy.words:
            if name in RESERVED:
                yield (("taxonomy", "words", name), f"name clashes with a record column (reserved: {', '.join(sorted(RESERVED))})")
            if name in self.axes:
                yield (("taxonomy", "words", name), "also the name of an axis")
        for axis, values in self.axes.items():
            if axis in RESERVED:
                yield (("axes", axis), f"axis name clashes with a record column (reserved: {', '.join(sorted(RESERVED))})")
            if not values:
                yield (("axes", axis), "expected at least one value")
            if len(set(values)) != len(values):
                yield (("axes", axis), "duplicate values")
        if self.chunk_size < 1:
            yield ("chunk_size", "expected a positive integer")

    # Loaded lazily so a recipe can be validated and hashed cheaply.
    @cached_property
    def topics(self) -> Taxonomy:
        return load_topics(self.taxonomy.topics)

    @cached_property
    def audiences(self) -> Audiences:
        return load_audiences(self.taxonomy.audiences)

    @cached_property
    def words(self) -> dict[str, WordList]:
        return {name: load_words(ref) for name, ref in self.taxonomy.words.items()}

    @cached_property
    def entity_axes(self) -> dict[str, list[str]]:
        """Every entity besides topic and audience, in column order: the word lists (their values
        k-word combinations when ``taxonomy.pick`` says k), then ``axes``."""
        out = {}
        for name, wl in self.words.items():
            k = self.taxonomy.pick.get(name, 1)
            if k > len(wl.words):
                raise ConfigError(f"recipe {self.name!r}: taxonomy.pick.{name}: {k} words from a list of {len(wl.words)} ({wl.source})")
            out[name] = list(wl.words) if k == 1 else ["; ".join(c) for c in itertools.combinations(wl.words, k)]
        return out | self.axes

    def to_dict(self) -> dict:
        return to_dict(self)

    @cached_property
    def hash(self) -> str:
        """12 hex digits over the resolved recipe and the taxonomy contents."""
        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        h.update(self.topics.digest.encode())
        h.update(self.audiences.digest.encode())
        for wl in self.words.values():
            h.update(wl.digest.encode())
        return h.hexdigest()[:12]

    def to_yaml(self) -> str:
        head = f"# resolved recipe {self.name!r}; hash {self.hash}\n"
        return head + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)


def builtin_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("corpus.recipes").iterdir() if p.name.endswith(".yaml"))


def _builtin(ref: str) -> Path | None:
    if ref not in builtin_recipes():
        return None
    return Path(str(resources.files("corpus.recipes").joinpath(f"{ref}.yaml")))


def _read(path: Path, chain: tuple[Path, ...]) -> tuple[dict, Located]:
    """The data of recipe file ``path`` with its base's resolved values merged under it (not
    yet validated as a whole), and where each key came from. ``chain``: the files (resolved)
    whose bases led here, ``path`` last, to detect cycles."""
    loc = load_yaml(path)
    if not isinstance(loc.data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data = loc.data
    if "base" not in data:
        return data, loc
    ref = data.pop("base")
    where = loc.where(("base",))
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"{where}: base: expected a built-in recipe name or a path to a recipe file, got {type(ref).__name__} {ref!r:.60}")
    base_path = _builtin(ref)
    if base_path is None:
        base_path = path.parent / Path(ref).expanduser()  # an absolute path stays as it is
        if not base_path.is_file():
            raise ConfigError(
                f"{where}: base: {ref!r}: no built-in recipe of that name (built-ins: {', '.join(builtin_recipes())}) "
                f"and no such file ({base_path})"
            )
    key = base_path.resolve()
    if key in chain:
        cycle = " -> ".join(str(p) for p in chain[chain.index(key) :] + (key,))
        raise ConfigError(f"{where}: base: {ref!r} makes a cycle of bases: {cycle}")
    base_data, base_loc = _read(base_path, chain + (key,))
    # The base's resolved values: validated as a recipe of its own (errors name its file).
    base = build(Recipe, base_data, base_loc)
    layers = base_loc.layers if isinstance(base_loc, LocatedStack) else [base_loc]
    merged = deep_merge(base.to_dict(), data)
    return merged, LocatedStack(merged, [loc, *layers])


def load_recipe(ref: str, overrides: dict | None = None) -> Recipe:
    """Load a built-in recipe by name or a recipe file by path, resolve its ``base`` (if any),
    apply ``overrides`` (dotted keys, e.g. ``{"seed": 3, "engine.model": "x"}``, after the
    base is merged; a None value removes the key, like null in a recipe file) and validate everything."""
    path = _builtin(ref) or Path(ref)
    if not path.is_file():
        raise ConfigError(f"{ref}: no such recipe file and no built-in recipe of that name (built-ins: {', '.join(builtin_recipes())})")
    data, loc = _read(path, (path.resolve(),))
    layers = loc.layers if isinstance(loc, LocatedStack) else [loc]
    overridden = []
    for key, value in (overrides or {}).items():
        node = data
        *parents, last = key.split(".")
        for n, p in enumerate(parents):
            if node.get(p) is None:
                node[p] = {}
            elif not isinstance(node[p], dict):
                raise ConfigError(f"--set: {key}: {'.'.join(parents[: n + 1])} is not a mapping (it holds {node[p]!r:.60})")
            node = node[p]
        if value is None:  # as in a recipe file: null removes the key (its default applies, an axis goes)
            node.pop(last, None)
        else:
            node[last] = value
        overridden.append(tuple(key.split(".")))
    recipe = build(Recipe, data, LocatedStack(data, layers, overridden))
    # Resolve the taxonomies now: a bad topic file should fail at load, not mid-run.
    recipe.topics, recipe.audiences, recipe.entity_axes  # noqa: B018
    return recipe


def recipe_keys() -> list[KeyDoc]:
    """Every key of a recipe (what a recipe file and ``--set`` accept), in field order:
    dotted path, type, default and docstring. Nested sections (``sampling``, ``gate``...) are
    listed before their keys."""
    return config_keys(Recipe)

