"""Benchmark decontamination settings (filled in by the decontam stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DecontamConfig:
    """Benchmark decontamination settings (filled in by the decontam stage)."""
