"""The stage interface: a record-level stage is an object with one method.

``stage(table) -> table``: it takes a batch of records (an Arrow table with the record schema,
or any table with ``id`` and ``text``), fills its own columns and returns the table. A verdict
once written is final: a stage leaves rows it has already decided as they are, so running it
again, after a crash or on a resumed run, changes nothing. Each call counts in ``stage.stats``
what it saw, kept and dropped (by reason), counted from the verdict columns whether the work was
done now or earlier, and how long the new work took. ``close()`` frees worker pools.

The stages: ``corpus.gate.Gate``, ``corpus.dedup.Dedup``, ``corpus.decontam.Decontam`` and
``corpus.tokens.Count``; ``corpus.runner`` runs them over a run's chunks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class StageStats:
    seen: int = 0
    """Rows the stage looked at (its candidates)."""
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    """Rows it dropped, by reason."""
    seconds: float = 0.0
    """Time spent on new work (verdicts already on file cost nothing)."""

    def add(self, kept: int, dropped: Counter | dict, seconds: float = 0.0) -> None:
        self.kept += kept
        self.dropped.update(dropped)
        self.seen += kept + sum(dropped.values())
        self.seconds += seconds

    def merge(self, other: StageStats) -> None:
        self.add(other.kept, other.dropped, other.seconds)

    def to_dict(self) -> dict:
        return {"seen": self.seen, "kept": self.kept, "dropped": dict(self.dropped.most_common()),
                "seconds": round(self.seconds, 3)}


class Stage:
    """Base of the record-level stages (see the module docstring)."""

    name: str

    def __init__(self):
        self.stats = StageStats()

    def __call__(self, table: pa.Table) -> pa.Table:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """Replace or append column ``name`` (keeping the existing field's type in a record table)."""
    if name in table.column_names:
        i = table.column_names.index(name)
        return table.set_column(i, table.schema.field(i), values.cast(table.schema.field(i).type))
    return table.append_column(name, values)


def live_rows(table: pa.Table, *after: str) -> np.ndarray:
    """Rows still in the running: text present, gate ``accepted`` or not run yet, and no verdict
    in any of the columns ``after`` (e.g. ``dup_of`` for decontamination)."""
    mask = pc.is_valid(table.column("text"))
    if "gate" in table.column_names:
        gate = table.column("gate")
        mask = pc.and_(mask, pc.fill_null(pc.equal(gate, "accepted"), True))
    for col in after:
        if col in table.column_names:
            mask = pc.and_(mask, pc.is_null(table.column(col)))
    return np.asarray(mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask, dtype=bool)
