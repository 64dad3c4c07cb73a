"""The run directory (DESIGN.md, "Run directory"): the frozen recipe and the chunk files.

A chunk whose file exists is done: chunk files are written through a temporary name and an
atomic rename, so a crash (kill -9 at any moment) leaves either no file or a complete one.
"""

from __future__ import annotations

from pathlib import Path

from corpus.config import ConfigError
from corpus.io import chunk_path, list_chunks, remove_stale, write_text
from corpus.recipe import Recipe, load_recipe


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def recipe_diff(a: Recipe, b: Recipe) -> list[str]:
    """Dotted keys whose values differ between two resolved recipes."""
    fa, fb = _flatten(a.to_dict()), _flatten(b.to_dict())
    keys = sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
    if not keys and a.hash != b.hash:
        keys = ["taxonomy file contents (topics/audiences changed on disk)"]
    return keys


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def recipe_path(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def generated(self) -> Path:
        return self.path / "generated"

    def chunk_path(self, c: int) -> Path:
        return chunk_path(self.generated, c)

    def chunks(self) -> dict[int, Path]:
        """The complete chunk files, by chunk number, in order."""
        return list_chunks(self.generated)

    def done_chunks(self) -> set[int]:
        return set(self.chunks())

    def remove_partial(self, c: int) -> None:
        """Delete temporary files a killed writer of chunk ``c`` left behind (only chunk c's owner calls this)."""
        remove_stale(self.generated, self.chunk_path(c).name)

    def check(self) -> None:
        """Fail with one line unless this is a run directory (a frozen recipe)."""
        if not self.path.is_dir():
            raise ConfigError(f"{self.path}: no such run directory")
        if not self.recipe_path.is_file():
            raise ConfigError(f"{self.path}: not a run directory (no recipe.yaml)")

    def recipe(self) -> Recipe:
        """The run's frozen recipe."""
        self.check()
        return load_recipe(str(self.recipe_path))

    def freeze(self, recipe: Recipe) -> None:
        """Write the resolved recipe once; refuse a different recipe in an existing run."""
        if self.recipe_path.is_file():
            frozen = load_recipe(str(self.recipe_path))
            if frozen.hash != recipe.hash:
                diff = recipe_diff(frozen, recipe)
                raise ConfigError(
                    f"{self.path} holds a run of a different recipe (frozen {frozen.hash}, now {recipe.hash}); "
                    f"differing keys: {', '.join(diff)}. Rerun with the same recipe and flags, or use a new --out."
                )
            return
        write_text(self.recipe_path, recipe.to_yaml())
        # The frozen file is the run's source of truth: it must load back to the same recipe.
        back = load_recipe(str(self.recipe_path))
        if back.hash != recipe.hash:
            raise RuntimeError(f"bug: {self.recipe_path} reloads with hash {back.hash}, not {recipe.hash}: {recipe_diff(back, recipe)}")
