"""How completions are produced (filled in by the generation stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineConfig:
    """How completions are produced (filled in by the generation stage)."""
