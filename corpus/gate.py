"""Quality-gate checks and thresholds (filled in by the gate stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GateConfig:
    """Quality-gate checks and thresholds (filled in by the gate stage)."""
