"""The run directory (DESIGN.md, "Run directory"): the frozen recipe and the chunk files.

A chunk whose file exists is done: chunk files are written through a temporary name and an
atomic rename, so a crash (kill -9 at any moment) leaves either no file or a complete one.
"""

from __future__ import annotations

import re
from pathlib import Path

from corpus.config import ConfigError
from corpus.recipe import Recipe, load_recipe
from corpus.records import write_text_atomic

_CHUNK = re.compile(r"chunk-(\d{6,})\.parquet")


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
        return self.generated / f"chunk-{c:06d}.parquet"

    def done_chunks(self) -> set[int]:
        if not self.generated.is_dir():
            return set()
        return {int(m.group(1)) for p in self.generated.iterdir() if (m := _CHUNK.fullmatch(p.name))}

    def remove_partial(self, c: int) -> None:
        """Delete temporary files a killed writer of chunk ``c`` left behind (only chunk c's owner calls this)."""
        for p in self.generated.glob(f".{self.chunk_path(c).name}.tmp-*"):
            p.unlink(missing_ok=True)

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
        write_text_atomic(self.recipe_path, recipe.to_yaml())
        # The frozen file is the run's source of truth: it must load back to the same recipe.
        back = load_recipe(str(self.recipe_path))
        if back.hash != recipe.hash:
            raise RuntimeError(f"bug: {self.recipe_path} reloads with hash {back.hash}, not {recipe.hash}: {recipe_diff(back, recipe)}")
