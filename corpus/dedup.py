"""Exact and near-duplicate removal settings (filled in by the dedup stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DedupConfig:
    """Exact and near-duplicate removal settings (filled in by the dedup stage)."""
