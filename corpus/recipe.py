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
from typing import Literal

import yaml

from corpus.config import ConfigError, build, load_yaml, to_dict
from corpus.decontam import DecontamConfig
from corpus.dedup import DedupConfig
from corpus.engines import EngineConfig
from corpus.gate import GateConfig
from corpus.records import record_schema
from corpus.taxonomy import Audiences, Taxonomy, load_audiences, load_topics

# Columns a recipe axis may not be named after (they exist in every record).
RESERVED = {f.name for f in record_schema()} | {"leaf", "branch", "path", "audience_description"}


@dataclass
class TaxonomyConfig:
    topics: list[str] = field(default_factory=lambda: ["python-cs"])
    """Topic trees: built-in names (``corpus topics`` lists them) or paths to YAML files."""
    audiences: list[str] = field(default_factory=lambda: ["default"])
    """Audience lists: built-in names or paths."""


@dataclass
class Templates:
    """Jinja2 templates. Variables: topic, leaf, branch, path (list), audience,
    audience_description, every axis by name, and ``outline`` in the extract stage."""

    extract: str
    """The final request: the textbook extract."""
    system: str | None = None
    """System message for chat models (omitted when null)."""
    outline: str | None = None
    """Optional first stage: an LLM-made intermediate (outline, key sentence) fed to ``extract`` as ``outline``."""


@dataclass
class Sampling:
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 1024
    """Completion tokens per extract (truncated extracts are rejected by the gate)."""
    outline_max_tokens: int = 256
    stop: list[str] = field(default_factory=list)

    def validate(self):
        if not 0 <= self.temperature <= 2:
            yield ("temperature", "expected a value between 0 and 2")
        if not 0 < self.top_p <= 1:
            yield ("top_p", "expected a value in (0, 1]")
        if self.max_tokens < 1:
            yield ("max_tokens", "expected a positive integer")


@dataclass
class TokenCounter:
    kind: Literal["tiktoken", "hf"] = "tiktoken"
    """``tiktoken``: an encoding name (offline: cl100k_base); ``hf``: a local tokenizer directory."""
    name: str = "cl100k_base"


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

