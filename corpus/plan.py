"""The prompt plan: prompt i = f(recipe, seed, i), computed alone, in O(leaves) at worst.

Construction (balanced by design, not by luck):

* Prompts come in *rounds* of L (= number of leaves). Round r visits every leaf once, in
  an order shuffled per (seed, r). So over the first N prompts each leaf appears
  floor(N/L) or ceil(N/L) times, and leaf l's k-th appearance is exactly in round k.
* The other entities of leaf l in round r: read r as a mixed-radix number over the
  other axes (audience fastest, then each recipe axis), and shift each digit by a
  per-leaf offset: value_k = (digit_k(r) + offset_k(l)) mod n_k. For one leaf this maps
  r -> combination bijectively on [0, M) (M = audiences x every axis), so consecutive
  appearances of a leaf cycle through all A audiences before any repeats (even (leaf,
  audience) pairs), and through all M combinations before any full combination repeats:
  a repeat can only happen once all L*M combinations are used.
* offset_k(l) is l's rank in a seeded shuffle, mod n_k (a separate shuffle per axis), so in
  every round each axis' values are spread over the leaves as evenly as L allows.
* Seeded permutations of each axis' values make different seeds differ everywhere.

Nothing depends on earlier prompts: a plan can be extended, and any machine can compute
any prompt. Record ids are ``<recipe hash>-<i>``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import jinja2
import jinja2.meta
import numpy as np

from corpus.checks import key_sentence
from corpus.config import ConfigError
from corpus.recipe import Recipe
from corpus.taxonomy import SEP

_M64 = (1 << 64) - 1

# `corpus plan`'s default assumptions: tokens per kept extract, share of prompts kept.
TOKENS_PER_DOC = 600
ACCEPTANCE = 0.8


def mix64(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def mix64_array(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _permutation(n: int, *key: int) -> np.ndarray:
    """A permutation of range(n) determined by ``key`` (platform- and version-independent)."""
    k = 0
    for part in key:
        k = mix64(k ^ (part & _M64))
    with np.errstate(over="ignore"):
        scores = mix64_array(np.arange(n, dtype=np.uint64) ^ np.uint64(k))
    return np.argsort(scores, kind="stable")


def request_seed(seed: int, index: int) -> int:
    """The sampling seed of request ``index`` (31 bits: every engine accepts it)."""
    return mix64(mix64(seed ^ 0x5EED) ^ index) & 0x7FFFFFFF


@dataclass(frozen=True)
class Prompt:
    index: int
    id: str
    seed: int
    entities: dict[str, str]
    """topic (path), audience, and one value per word list and axis (those the recipe has): the record's labels."""
    context: dict
    """Everything a template may use (entities plus leaf, branch, path with a topic tree; audience_description with audiences)."""


class Plan:
    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.topics = recipe.topics
        self.audiences = recipe.audiences
        # The entity dimensions: the primary one (topic leaves; without a topic tree, the first
        # other dimension) goes in rounds, the others (audience, word lists, axes) are digits.
        dims = ([("audience", [a.name for a in self.audiences.items])] if len(self.audiences) else []) + list(recipe.entity_axes.items())
        if self.topics.leaves:
            self.primary = "topic"
            self.primary_values = [SEP.join(leaf) for leaf in self.topics.leaves]
        elif dims:
            self.primary, self.primary_values = dims.pop(0)
        else:
            raise ConfigError(f"recipe {recipe.name!r}: no entities to combine (give taxonomy.topics, taxonomy.audiences, taxonomy.words or axes)")
        self.dims = dims
        self.L = len(self.primary_values)
        seed = recipe.seed
        # Mixed radix over the other dimensions (audience fastest, then each word list and axis).
        self.radices = [len(v) for _, v in dims]
        self.M = math.prod(self.radices)
        self.combinations = self.L * self.M
        # Seeded value orders: digit d of dimension k means value perms[k][d].
        self.value_perms = [_permutation(n, seed, 1, k) for k, n in enumerate(self.radices)]
        # offset_k(l): rank of l in a seeded shuffle (one per dimension), mod n_k.
        self.offsets = []
        for k, n in enumerate(self.radices):
            rank = np.empty(self.L, dtype=np.int64)
            rank[_permutation(self.L, seed, 2, k)] = np.arange(self.L)
            self.offsets.append(rank % n)
        # Python-list copies for the per-prompt path: numpy scalar arithmetic costs ~10x more there.
        self._offsets = [o.tolist() for o in self.offsets]
        self._perms = [p.tolist() for p in self.value_perms]
        self._rounds: OrderedDict[int, list[int]] = OrderedDict()
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
        t = recipe.templates
        try:
            self.t_extract = env.from_string(t.extract)
            self.t_outline = env.from_string(t.outline) if t.outline else None
            self.t_system = env.from_string(t.system) if t.system else None
            # A system message without variables is the same for every prompt: render it once.
            if t.system and not jinja2.meta.find_undeclared_variables(env.parse(t.system)):
                self._system_const = self.t_system.render().strip()
            else:
                self._system_const = None
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"recipe {recipe.name!r}: template error at template line {e.lineno}: {e.message}") from None

    # -- entities -----------------------------------------------------------------
    def round_order(self, r: int) -> list[int]:
        """Leaf order of round r (cached: sequential access computes each round once)."""
        order = self._rounds.get(r)
        if order is None:
            order = _permutation(self.L, self.recipe.seed, 3, r).tolist()
            self._rounds[r] = order
            if len(self._rounds) > 4:
                self._rounds.popitem(last=False)
        return order

    def digits(self, leaf: int | np.ndarray, r: int):
        """Per-axis digit(s) (audience first) of leaf(s) in round r."""
        out = []
        for n, off in zip(self.radices, self.offsets):
            r, d = divmod(r, n)  # d: this axis' digit of the round number
            out.append((d + off[leaf]) % n)
        return out

    def assignment(self, i: int) -> tuple[int, list[int]]:
        """(leaf index, value index per axis with the audience first) of prompt i."""
        r, j = divmod(i, self.L)
        leaf = self.round_order(r)[j]
        values = []
        for n, off, perm in zip(self.radices, self._offsets, self._perms):  # digits(), on Python ints
            r, d = divmod(r, n)
            values.append(perm[(d + off[leaf]) % n])
        return leaf, values

    def prompt(self, i: int) -> Prompt:
        if i < 0:
            raise IndexError(f"prompt index must be >= 0, got {i}")
        leaf, values = self.assignment(i)
        entities = {self.primary: self.primary_values[leaf]}
        for (name, vals), v in zip(self.dims, values):
            entities[name] = vals[v]
        context = dict(entities)
        if self.topics.leaves:
            path = self.topics.leaves[leaf]
            context.update(leaf=path[-1], branch=path[0], path=list(path))
        if len(self.audiences):
            context["audience_description"] = self.audiences.items[values[0]].description.strip()
        return Prompt(i, f"{self.recipe.hash}-{i}", request_seed(self.recipe.seed, i), entities, context)

    # -- rendering ----------------------------------------------------------------
    def render(self, p: Prompt, stage: str = "extract", outline: str | None = None) -> str:
        """The user message of ``stage`` ("outline" or "extract") for prompt ``p``; the extract
        template sees ``outline`` and the sentence it names (``key_sentence``, None without one)."""
        if stage == "outline":
            if self.t_outline is None:
                raise ValueError(f"recipe {self.recipe.name!r} has no outline stage")
            return self.t_outline.render(p.context).strip()
        return self.t_extract.render(p.context, outline=outline, key_sentence=key_sentence(outline)).strip()

    def system(self, p: Prompt) -> str | None:
        if self._system_const is not None or self.t_system is None:
            return self._system_const
        return self.t_system.render(p.context).strip()

    # -- coverage -----------------------------------------------------------------
    def coverage(self, n: int) -> dict:
        """Coverage of the first n prompts, counted over the plan itself (round by round). "Leaves"
        are the primary dimension's values (topic leaves, or the first word list or axis without a
        topic tree); "pairs" are (leaf, value of the next dimension: the audience when there is one)."""
        L, A = self.L, (self.radices[0] if self.radices else 1)
        per_leaf = np.zeros(L, dtype=np.int64)
        pairs = np.zeros((L, A), dtype=np.int64)
        dim_counts = [np.zeros(k, dtype=np.int64) for k in self.radices]
        rounds, rest = divmod(n, L)
        for r in range(rounds + (1 if rest else 0)):
            leaves = np.asarray(self.round_order(r)[: (L if r < rounds else rest)])
            ds = self.digits(leaves, r)
            per_leaf[leaves] += 1
            np.add.at(pairs, (leaves, self.value_perms[0][ds[0]] if ds else 0), 1)
            for counts, perm, d in zip(dim_counts, self.value_perms, ds):
                np.add.at(counts, perm[d], 1)
        # Leaf l's k-th appearance (round k) has a combination that is a bijection of k mod M:
        # a repeat needs k >= M, i.e. every one of the L*M combinations used.
        repeated = int(np.maximum(per_leaf - self.M, 0).sum())
        out = {
            "prompts": n,
            "primary": self.primary,
            "leaves": L,
            "leaves_covered": int((per_leaf > 0).sum()),
            "min_per_leaf": int(per_leaf.min()),
            "max_per_leaf": int(per_leaf.max()),
            "pairs": L * A,
            "pairs_covered": int((pairs > 0).sum()),
            "max_pair_spread_within_leaf": int((pairs.max(axis=1) - pairs.min(axis=1)).max()),
            "combinations": self.combinations,
            "combinations_covered": min(n, self.combinations),
            "repeated_combinations": repeated,
            "axes": {
                axis: {vals[k]: int(c) for k, c in enumerate(counts)}
                for (axis, vals), counts in zip(self.dims, dim_counts) if axis != "audience"
            },
        }
        return out
