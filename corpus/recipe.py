"""Recipes: the whole description of a corpus, validated on load and frozen with a hash.

A recipe names the taxonomies, the extra axes every prompt is forced onto, the prompt
templates of each stage, sampling, engine, gate, dedup and decontamination settings, and
the tokenizer that counts the budget. Built-in recipes ship in ``corpus/recipes``; any
path works too. Unknown keys and wrong types are errors naming the file, line and key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import yaml

from corpus.config import ConfigError, build, load_yaml, to_dict
from corpus.records import record_schema
from corpus.settings import (
    DecontamConfig,
    DedupConfig,
    EngineConfig,
    GateConfig,
    Sampling,
    TaxonomyConfig,
    Templates,
    TokenCounter,
)
from corpus.taxonomy import Audiences, Taxonomy, load_audiences, load_topics

# Columns a recipe axis may not be named after (they exist in every record).
RESERVED = {f.name for f in record_schema()} | {"leaf", "branch", "path", "audience_description"}


@dataclass
class Recipe:
    name: str
    templates: Templates
    seed: int = 0
    """Seeds the plan (which entities each prompt combines) and every request's sampling seed."""
    taxonomy: TaxonomyConfig = field(default_factory=TaxonomyConfig)
    axes: dict[str, list[str]] = field(default_factory=dict)
    """Extra axes and their values, e.g. position: [opening, middle, closing]. One record column each."""
    chunk_size: int = 1024
    """Prompts per chunk: the unit of generation, resumption and distribution."""
    sampling: Sampling = field(default_factory=Sampling)
    engine: EngineConfig = field(default_factory=EngineConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    tokenizer: TokenCounter = field(default_factory=TokenCounter)
    """The tokenizer that counts the budget and every record's ``n_tokens``."""

    def validate(self):
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

    def to_dict(self) -> dict:
        return to_dict(self)

    @cached_property
    def hash(self) -> str:
        """12 hex digits over the resolved recipe and the taxonomy contents."""
        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        h.update(self.topics.digest.encode())
        h.update(self.audiences.digest.encode())
        return h.hexdigest()[:12]

    def to_yaml(self) -> str:
        head = f"# resolved recipe {self.name!r}; hash {self.hash}\n"
        return head + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)


def builtin_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("corpus.recipes").iterdir() if p.name.endswith(".yaml"))


def load_recipe(ref: str, overrides: dict | None = None) -> Recipe:
    """Load a built-in recipe by name or a recipe file by path; apply ``overrides``
    (dotted keys, e.g. ``{"seed": 3, "engine.model": "x"}``) and validate everything."""
    res = resources.files("corpus.recipes").joinpath(f"{ref}.yaml")
    path = Path(str(res)) if res.is_file() else Path(ref)
    if not path.is_file():
        raise ConfigError(f"{ref}: no such recipe file and no built-in recipe of that name (built-ins: {', '.join(builtin_recipes())})")
    loc = load_yaml(path)
    if not isinstance(loc.data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for key, value in (overrides or {}).items():
        node = loc.data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    recipe = build(Recipe, loc.data, loc)
    # Resolve the taxonomies now: a bad topic file should fail at load, not mid-run.
    recipe.topics, recipe.audiences  # noqa: B018
    return recipe

