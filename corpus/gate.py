"""The quality gate stage: check every extract, run its Python in the sandbox, reject with a named reason.

``Gate(config)(table)`` fills ``gate`` (``accepted`` or the first failing check of
``corpus.checks.REGISTRY``), ``gate_detail``, ``n_snippets`` and ``snippets_ok`` (Python snippets
that parsed and ran cleanly; null when the extract was rejected before its snippets ran; with
both sandbox checks skipped, the snippets that parsed) and, for exercises (``exercise: true``), the
``statement``, ``solution`` and ``tests`` columns, for the rows whose ``gate`` is still
null: a verdict once written is never recomputed (a sandbox timeout under load must not change
an already-decided corpus). Snippets run only for extracts that passed every other check, in
one warm sandbox pool per stage (``workers`` processes, default all cores).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from corpus.checks import ACCEPTED, Program, check_text, verdict
from corpus.sandbox import Sandbox
from corpus.settings import GateConfig
from corpus.stage import Stage, set_column

_TYPES = {"gate": pa.string(), "gate_detail": pa.string(), "n_snippets": pa.int32(), "snippets_ok": pa.int32(),
          "statement": pa.string(), "solution": pa.string(), "tests": pa.string()}


@dataclass
class _Pending:
    """An extract whose text checks passed; its snippets wait for the sandbox."""

    row: int
    programs: list[Program]
    n_snippets: int


def make_sandbox(cfg: GateConfig, workers: int) -> Sandbox:
    """The sandbox the gate's settings call for (time and memory limits per snippet)."""
    return Sandbox(workers=workers, timeout=cfg.timeout, memory_mb=cfg.memory_mb)


class Gate(Stage):
    name = "gate"

    def __init__(self, cfg: GateConfig, *, workers: int | None = None, sandbox: Sandbox | None = None):
        """``workers``: sandbox processes (default: all cores); ``sandbox``: use this one instead
        (the caller closes it)."""
        super().__init__()
        self.cfg = cfg
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._sandbox, self._own = sandbox, sandbox is None

    def __call__(self, table: pa.Table) -> pa.Table:
        t0 = time.perf_counter()
        n = table.num_rows
        old = {k: table.column(k).to_pylist() if k in table.column_names else [None] * n for k in _TYPES}
        todo = [i for i, g in enumerate(old["gate"]) if g is None]
        if todo:
            texts = table.column("text").to_pylist()
            reasons, outlines = ((table.column(c).to_pylist() if c in table.column_names else [None] * n) for c in ("finish_reason", "outline"))
            pending: list[_Pending] = []
            for i in todo:
                gate, detail, k, ok, programs, ex = check_text(texts[i], reasons[i], self.cfg, outlines[i])
                old["gate"][i], old["gate_detail"][i], old["n_snippets"][i], old["snippets_ok"][i] = gate, detail, k, ok
                if ex is not None:
                    old["statement"][i], old["solution"][i], old["tests"][i] = ex.statement, ex.solution, ex.tests
                if programs:
                    pending.append(_Pending(i, programs, k))
            if pending:
                results = self._run([p.code for item in pending for p in item.programs])
                pos = 0
                for item in pending:
                    res = results[pos : pos + len(item.programs)]
                    pos += len(item.programs)
                    gate, detail, ok = verdict(res, self.cfg, item.n_snippets, item.programs)
                    old["gate"][item.row], old["gate_detail"][item.row], old["snippets_ok"][item.row] = gate, detail, ok
            for name, typ in _TYPES.items():
                table = set_column(table, name, pa.array(old[name], type=typ))
        counts = Counter(old["gate"])
        kept = counts.pop(ACCEPTED, 0)
        self.stats.add(kept, counts, time.perf_counter() - t0 if todo else 0.0)
        return table

    def _run(self, programs: list[str]):
        if self._sandbox is None:
            self._sandbox = make_sandbox(self.cfg, self.workers)
        return self._sandbox.run_many(programs, timeout=self.cfg.timeout)

    def close(self) -> None:
        if self._own and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

