"""The quality gate: parse every extract, check it, run its Python, reject with a named reason.

An extract is split into prose and code blocks (fenced, with or without a language tag; code
the model wrote without fences is detected and either repaired or rejected). Checks run in the
order of ``CHECKS``; the first that fails is the record's ``gate`` (else ``"accepted"``) and
``gate_detail`` says why in a few words:

=================  =====================================================================
empty              no text (the request failed) or only whitespace
truncated          finish reason "length", or a code fence that is never closed
too_short          fewer than ``min_words`` words (prose + code)
too_long           more than ``max_words`` words
refusal            refusal or meta-talk ("As an AI...", "Sure! Here is...", "I hope this helps")
unfenced_code      Python outside code fences (only when ``unfenced_code: reject``)
no_code            no Python snippet (when ``require_code``)
too_many_snippets  more than ``max_snippets`` Python snippets
snippet_too_long   a snippet longer than ``max_snippet_lines`` lines
text_after_code    more than ``max_words_after_code`` words after the last code block
repetition         Gopher-style repetition: duplicate lines, top n-grams, duplicate n-grams
snippet_syntax     a snippet that does not parse (``ast``)
disallowed_import  a snippet importing a module outside the standard library + ``allowed_modules``
snippet_error      a snippet that raises, is killed, or floods its output, when run in the sandbox
snippet_timeout    a snippet that exceeds the sandbox's time limit
=================  =====================================================================

``apply_gate(rows, config, sandbox)`` gates a pyarrow Table or a list of record dicts and fills
``gate``, ``gate_detail``, ``n_snippets`` and ``snippets_ok`` (Python snippets that parsed and
ran cleanly; null when the extract was rejected before its snippets ran; with both run checks
skipped, the snippets that parsed). Snippets
run only for extracts that passed every other check, so the sandbox sees the fewest programs.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pyarrow as pa

    from corpus.sandbox import Sandbox

CHECKS = (
    "empty",
    "truncated",
    "too_short",
    "too_long",
    "refusal",
    "unfenced_code",
    "no_code",
    "too_many_snippets",
    "snippet_too_long",
    "text_after_code",
    "repetition",
    "snippet_syntax",
    "disallowed_import",
    "snippet_error",
    "snippet_timeout",
)
ACCEPTED = "accepted"

DEFAULT_REFUSALS = [
    r"\bas an ai\b",
    r"\bas a (?:large )?language model\b",
    r"\bI(?: cannot|can't| can not| am unable to|'m unable to|'m sorry| apologi[sz]e)\b",
    r"\A\W*(?:sure|certainly|of course|absolutely|okay|great)\b[!,.]",
    r"\A\W*here(?:'s| is| are)\b",
    r"\bI hope (?:this|that) helps\b",
    r"\blet me know if\b",
    r"\bfeel free to ask\b",
    r"\b(?:these|your|the above) instructions\b",
]


@dataclass
class GateConfig:
    """Quality-gate checks and thresholds. Every check is on unless named in ``skip``."""

    skip: list[str] = field(default_factory=list)
    """Checks to turn off, by name (see ``corpus.gate.CHECKS``), e.g. [text_after_code, repetition]."""
    min_words: int = 80
    """too_short: fewest words (prose + code, whitespace-separated) an extract may have."""
    max_words: int = 2000
    """too_long: most words an extract may have (1024 tokens is ~700 words of prose + code)."""
    refusal_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_REFUSALS))
    """refusal: case-insensitive regular expressions for refusals and meta-talk."""
    unfenced_code: Literal["repair", "reject", "ignore"] = "repair"
    """Python written without fences: ``repair`` fences it (then it is checked and run like any
    snippet), ``reject`` fails the extract with unfenced_code, ``ignore`` leaves it as prose."""
    require_code: bool = True
    """no_code: an extract must hold at least one Python snippet."""
    max_snippets: int = 6
    """too_many_snippets: most Python snippets per extract."""
    max_snippet_lines: int = 80
    """snippet_too_long: most lines per snippet."""
    max_words_after_code: int = 40
    """text_after_code: most words after the last code block (the default template asks for none;
    a one-sentence wrap-up is tolerated). Add text_after_code to ``skip`` for templates that allow it."""
    max_duplicate_line_fraction: float = 0.3
    """repetition: most lines (of 10+ characters) that repeat an earlier line, as a fraction of them."""
    max_top_ngram_fraction: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    """repetition: most characters of the prose covered by its most frequent 2-, 3- and 4-gram (Gopher)."""
    max_duplicate_ngram_fraction: list[float] = field(default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])
    """repetition: most characters of the prose inside repeated 5- to 10-grams (Gopher)."""
    allowed_modules: list[str] = field(default_factory=lambda: ["numpy"])
    """disallowed_import: modules a snippet may import besides the standard library (top-level names)."""
    standalone_snippets: bool = True
    """snippet_error: true runs each snippet on its own (the default template asks for that);
    false runs an extract's snippets in order as one program (later ones may use earlier definitions)."""
    timeout: float = 5.0
    """snippet_timeout: wall-clock seconds per program (CPU time is capped at the same)."""
    memory_mb: int = 1024
    """snippet_error: address-space limit per program, MB (a MemoryError fails the snippet)."""

    def validate(self):
        for name in self.skip:
            if name not in CHECKS:
                yield ("skip", f"unknown check {name!r} (checks: {', '.join(CHECKS)})")
        for i, pattern in enumerate(self.refusal_patterns):
            try:
                re.compile(pattern)
            except re.error as e:
                yield (("refusal_patterns", i), f"not a valid regular expression: {e}")
        for key in ("min_words", "max_words", "max_snippets", "max_snippet_lines", "max_words_after_code", "memory_mb"):
            if getattr(self, key) < 0:
                yield (key, "expected a non-negative integer")
        if self.timeout <= 0:
            yield ("timeout", "expected a positive number of seconds")
        for key, n in (("max_top_ngram_fraction", 3), ("max_duplicate_ngram_fraction", 6)):
            values = getattr(self, key)
            if len(values) != n or not all(0 <= v <= 1 for v in values):
                yield (key, f"expected {n} fractions between 0 and 1")
        if not 0 <= self.max_duplicate_line_fraction <= 1:
            yield ("max_duplicate_line_fraction", "expected a fraction between 0 and 1")


# -- parsing -------------------------------------------------------------------------------
@dataclass
class Block:
    code: str
    lang: str  # the fence's language tag ("" when none; "python" for repaired unfenced code)
    python: bool
    fenced: bool = True


@dataclass
class Extract:
    """An extract split into prose and code blocks, in order."""

    prose: list[str]  # prose segments between blocks
    blocks: list[Block]
    unclosed_fence: bool
    unfenced: int  # runs of unfenced Python found in the prose
    words_after_code: int  # words after the last block

    @property
    def snippets(self) -> list[str]:
        return [b.code for b in self.blocks if b.python]

    @property
    def prose_words(self) -> list[str]:
        return " ".join(self.prose).split()

    @property
    def code_lines(self) -> int:
        return sum(len(s.splitlines()) for s in self.snippets)


_FENCE = re.compile(r"^ {0,3}(```+|~~~+)\s*([\w+#.-]*)[^\n]*$")
_PYTHON_TAGS = {"python", "py", "python3", "py3"}  # not pycon: ">>>" sessions do not run
# A line that starts unfenced Python: a definition, an import or a compound statement.
_CODE_START = re.compile(r"^(?:(?:async\s+)?def\s+\w+\s*\(|class\s+\w+|import\s+\w|from\s+[\w.]+\s+import\s|@\w|(?:for|while|if|with|try)\b.*:\s*$)")
# Lines that may continue it without indentation: calls, assignments, prints, comments.
_CODE_CONT = re.compile(r"^(?:[\w.\[\]]+\s*(?:[-+*/%|&]?=|\()|print\(|return\b|#|(?:elif|else|except|finally)\b.*:\s*$|[)\]}])")


def _is_python_block(lang: str, code: str) -> bool:
    if lang.lower() in _PYTHON_TAGS:
        return True
    if lang:
        return False
    # Untagged: Python when it parses and is more than a listing of values (program output).
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return bool(_CODE_START.match(code.lstrip()))  # broken Python, still Python
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, (ast.Constant, ast.Name, ast.Tuple, ast.List))) for n in tree.body)


def _find_unfenced(lines: list[str]) -> list[tuple[int, int]]:
    """Runs [a, b) of prose lines that are Python written without fences."""
    runs, i = [], 0
    while i < len(lines):
        if not _CODE_START.match(lines[i]):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j][:1] in " \t" or _CODE_CONT.match(lines[j]) or _CODE_START.match(lines[j])):
            j += 1
        while j > i and not lines[j - 1].strip():
            j -= 1
        code = "\n".join(lines[i:j])
        if j - i >= 2:
            try:
                ast.parse(code)
                runs.append((i, j))
            except SyntaxError:
                pass
        i = j
    return runs


def parse(text: str, unfenced: str = "repair") -> Extract:
    """Split ``text`` into prose and code blocks; ``unfenced`` as in GateConfig.unfenced_code."""
    prose: list[str] = []
    blocks: list[Block] = []
    order: list[tuple[str, object]] = []  # ("prose", [lines]) and ("block", Block), in order
    lines = text.splitlines()
    buf: list[str] = []
    i, unclosed = 0, False
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            buf.append(lines[i])
            i += 1
            continue
        fence, lang = m.group(1), m.group(2)
        j = i + 1
        while j < len(lines) and not re.match(rf"^ {{0,3}}{re.escape(fence[0]) * len(fence)}{re.escape(fence[0])}*\s*$", lines[j]):
            j += 1
        if j == len(lines):
            unclosed = True
        code = "\n".join(lines[i + 1 : j]).rstrip() + "\n"
        order.append(("prose", buf))
        order.append(("block", Block(code, lang, _is_python_block(lang, code))))
        buf, i = [], j + 1
    order.append(("prose", buf))

    found = 0
    out: list[tuple[str, object]] = []
    for kind, item in order:
        if kind == "block" or unfenced == "ignore":
            out.append((kind, item))
            continue
        runs = _find_unfenced(item)
        found += len(runs)
        if unfenced != "repair" or not runs:
            out.append((kind, item))
            continue
        last = 0
        for a, b in runs:
            out.append(("prose", item[last:a]))
            out.append(("block", Block("\n".join(item[a:b]) + "\n", "python", True, fenced=False)))
            last = b
        out.append(("prose", item[last:]))
    after = 0
    for kind, item in out:
        if kind == "block":
            blocks.append(item)
            after = 0
        else:
            prose.append("\n".join(item))
            after += len(" ".join(item).split())
    return Extract(prose, blocks, unclosed, found, after if blocks else 0)


# -- checks --------------------------------------------------------------------------------
def _repetition(text: str, ex: Extract, cfg: GateConfig) -> str | None:
    lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) >= 10]
    if lines:
        dup = len(lines) - len(set(lines))
        if dup / len(lines) > cfg.max_duplicate_line_fraction:
            return f"{dup}/{len(lines)} lines are repeats"
    words = [re.sub(r"\W+", "", w.lower()) for w in ex.prose_words]
    words = [w for w in words if w]
    total = sum(len(w) for w in words)
    if len(words) < 50:  # Gopher's n-gram ratios mean little on a few sentences
        return None
    for n, limit in zip((2, 3, 4), cfg.max_top_ngram_fraction):
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        gram, count = grams.most_common(1)[0]
        if count > 1 and count * sum(len(w) for w in gram) / total > limit:
            return f"top {n}-gram {' '.join(gram)!r} covers {count * sum(len(w) for w in gram) / total:.0%} of the prose"
    for n, limit in zip(range(5, 11), cfg.max_duplicate_ngram_fraction):
        starts = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(starts)
        covered = [False] * len(words)
        for i, g in enumerate(starts):
            if counts[g] > 1:
                covered[i : i + n] = [True] * n
        frac = sum(len(w) for w, c in zip(words, covered) if c) / total
        if frac > limit:
            return f"repeated {n}-grams cover {frac:.0%} of the prose"
    return None


def _imports(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or "").split(".")[0])
    return names


@dataclass
class _Pending:
    """An extract whose text checks passed; its snippets wait for the sandbox."""

    row: int
    programs: list[str]
    n_snippets: int


def check_text(text: str | None, finish_reason: str | None, cfg: GateConfig) -> tuple[str, str, int, int | None, list[str]]:
    """Every check but the sandbox's: (gate, detail, n_snippets, snippets_ok, programs to run)."""
    on = set(CHECKS) - set(cfg.skip)
    if text is None or not text.strip():
        return ("empty", "no text", 0, None, []) if "empty" in on else (ACCEPTED, "", 0, None, [])
    ex = parse(text, cfg.unfenced_code)
    snippets = ex.snippets
    n = len(snippets)
    words = len(text.split())

    def first_failure() -> tuple[str, str] | None:
        if "truncated" in on:
            if finish_reason == "length":
                return "truncated", "finish reason length"
            if ex.unclosed_fence:
                return "truncated", "unclosed code fence"
        if "too_short" in on and words < cfg.min_words:
            return "too_short", f"{words} words < {cfg.min_words}"
        if "too_long" in on and words > cfg.max_words:
            return "too_long", f"{words} words > {cfg.max_words}"
        if "refusal" in on:
            prose = "\n".join(ex.prose)
            for pattern in cfg.refusal_patterns:
                m = re.search(pattern, prose, re.IGNORECASE | re.MULTILINE)
                if m:
                    return "refusal", f"matched {m.group(0).strip()!r}"
        if "unfenced_code" in on and cfg.unfenced_code == "reject" and ex.unfenced:
            return "unfenced_code", f"{ex.unfenced} unfenced code block(s)"
        if "no_code" in on and cfg.require_code and not n:
            return "no_code", "no Python snippet"
        if "too_many_snippets" in on and n > cfg.max_snippets:
            return "too_many_snippets", f"{n} snippets > {cfg.max_snippets}"
        if "snippet_too_long" in on:
            for k, s in enumerate(snippets, 1):
                if len(s.splitlines()) > cfg.max_snippet_lines:
                    return "snippet_too_long", f"snippet {k}: {len(s.splitlines())} lines > {cfg.max_snippet_lines}"
        if "text_after_code" in on and ex.words_after_code > cfg.max_words_after_code:
            return "text_after_code", f"{ex.words_after_code} words after the last code block > {cfg.max_words_after_code}"
        if "repetition" in on:
            why = _repetition(text, ex, cfg)
            if why:
                return "repetition", why
        return None

    failed = first_failure()
    if failed:
        return (*failed, n, None, [])
    parsed = []
    for k, s in enumerate(snippets, 1):
        try:
            ast.parse(s)
            parsed.append(s)
        except SyntaxError as e:
            if "snippet_syntax" in on:
                return "snippet_syntax", f"snippet {k}: {e.msg} (line {e.lineno})", n, None, []
    if "disallowed_import" in on:
        allowed = set(sys.stdlib_module_names) | set(cfg.allowed_modules)
        for k, s in enumerate(parsed, 1):
            bad = sorted(_imports(s) - allowed)
            if bad:
                return "disallowed_import", f"snippet {k} imports {', '.join(bad)}", n, None, []
    if not parsed or not ({"snippet_error", "snippet_timeout"} & on):
        return ACCEPTED, "", n, len(parsed), []
    programs = parsed if cfg.standalone_snippets else ["\n\n".join(parsed)]
    return ACCEPTED, "", n, None, programs


def _verdict(results, cfg: GateConfig, n_parsed: int) -> tuple[str, str, int]:
    """Gate, detail and snippets_ok from an extract's sandbox results."""
    on = set(CHECKS) - set(cfg.skip)
    ok = sum(r.status == "ok" for r in results)
    snippets_ok = ok if cfg.standalone_snippets else (n_parsed if ok else 0)
    for k, r in enumerate(results, 1):
        where = f"snippet {k}: " if cfg.standalone_snippets else ""
        if r.status == "timeout" and "snippet_timeout" in on:
            return "snippet_timeout", f"{where}{r.error}", snippets_ok
        if r.status in ("error", "killed", "truncated") and "snippet_error" in on:
            return "snippet_error", f"{where}{r.status}: {r.error}"[:300], snippets_ok
    return ACCEPTED, "", snippets_ok


def apply_gate(rows, config: GateConfig, sandbox: Sandbox | None = None, *, workers: int = 2, progress: bool | None = None):
    """Gate ``rows`` (a pyarrow Table, or a list of dicts with ``text`` and optionally
    ``finish_reason``) and return ``(rows, counts)``: the same kind of object with ``gate``,
    ``gate_detail``, ``n_snippets`` and ``snippets_ok`` set, and a Counter of ``gate`` values
    (``accepted`` and each rejection reason). Without ``sandbox``, one with ``workers`` workers
    and the config's limits is started for the call."""
    import pyarrow as pa

    table = rows if isinstance(rows, pa.Table) else None
    dicts = table.select([c for c in ("text", "finish_reason") if c in table.column_names]).to_pylist() if table is not None else rows
    out = []
    pending: list[_Pending] = []
    for i, row in enumerate(dicts):
        gate, detail, n, ok, programs = check_text(row.get("text"), row.get("finish_reason"), config)
        out.append({"gate": gate, "gate_detail": detail, "n_snippets": n, "snippets_ok": ok})
        if programs:
            pending.append(_Pending(i, programs, n))
    if pending:
        programs = [p for item in pending for p in item.programs]
        results = _run(programs, config, sandbox, workers, progress)
        pos = 0
        for item in pending:
            res = results[pos : pos + len(item.programs)]
            pos += len(item.programs)
            gate, detail, ok = _verdict(res, config, item.n_snippets)
            out[item.row].update(gate=gate, gate_detail=detail, snippets_ok=ok)
    counts = Counter(o["gate"] for o in out)
    if table is None:
        return [{**row, **o} for row, o in zip(rows, out)], counts
    types = {"gate": pa.string(), "gate_detail": pa.string(), "n_snippets": pa.int32(), "snippets_ok": pa.int32()}
    for name, typ in types.items():
        col = pa.array([o[name] for o in out], type=typ)
        idx = table.schema.get_field_index(name)
        if idx >= 0:
            table = table.set_column(idx, table.schema.field(idx).with_type(typ), col)
        else:
            table = table.append_column(pa.field(name, typ), col)
    return table, counts


def make_sandbox(cfg: GateConfig, workers: int) -> Sandbox:
    """The sandbox the gate's settings call for (time and memory limits per snippet)."""
    from corpus.sandbox import Sandbox

    return Sandbox(workers=workers, timeout=cfg.timeout, memory_mb=cfg.memory_mb)


def _run(programs: list[str], cfg: GateConfig, sandbox, workers: int, progress: bool | None):
    from tqdm import tqdm

    own = sandbox is None
    if own:
        sandbox = make_sandbox(cfg, workers)
    try:
        results = []
        bar = tqdm(total=len(programs), desc="snippets", unit="snippet", disable=not (sys.stderr.isatty() if progress is None else progress))
        for a in range(0, len(programs), 64):
            batch = sandbox.run_many(programs[a : a + 64], timeout=cfg.timeout)
            results += batch
            bar.update(len(batch))
        bar.close()
        return results
    finally:
        if own:
            sandbox.close()


def format_counts(counts: Counter) -> str:
    """Per-reason counts, accepted first, then the checks in their order."""
    total = sum(counts.values())
    lines = [f"{total} extracts"]
    for name in (ACCEPTED, *CHECKS):
        if counts.get(name):
            lines.append(f"  {name:<18} {counts[name]:>7}  {counts[name] / total:6.1%}")
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------
def cmd_gate(args) -> int:
    import json
    from pathlib import Path

    from corpus.config import ConfigError
    from corpus.recipe import load_recipe
    from corpus.records import read_rows, write_parquet_atomic, write_rows

    if bool(args.run) == bool(args.input):
        raise ConfigError("gate: give either --run RUN_DIR or --input FILE --output FILE")
    if args.input and not args.output:
        raise ConfigError("gate: --input needs --output")
    if args.run:
        run = Path(args.run)
        if not (run / "recipe.yaml").is_file():
            raise ConfigError(f"{run}: not a run directory (no recipe.yaml)")
        cfg = load_recipe(str(run / "recipe.yaml")).gate
        chunks = sorted((run / "generated").glob("chunk-*.parquet"))
        if not chunks:
            raise ConfigError(f"{run}/generated: no chunk-*.parquet files to gate")
    else:
        cfg = load_recipe(args.recipe).gate
        rows = read_rows(args.input, required=("text",))
    total = Counter()
    with make_sandbox(cfg, args.workers) as sb:
        if args.run:
            import pyarrow.parquet as pq

            for path in chunks:
                table, counts = apply_gate(pq.read_table(path), cfg, sb)
                write_parquet_atomic(table, path)
                total += counts
        else:
            rows, total = apply_gate(rows, cfg, sb)
            write_rows(rows, args.output)
    if args.json:
        print(json.dumps({name: total[name] for name in (ACCEPTED, *CHECKS) if total[name]}))
    else:
        print(format_counts(total))
    return 0


def register(subparsers) -> None:
    import os

    p = subparsers.add_parser(
        "gate",
        help="check extracts (parse, checks, run their snippets in the sandbox) and count rejections",
        description="Apply the quality gate: split each extract into prose and code, run the checks in order "
        f"({', '.join(CHECKS)}), run the Python snippets in the sandbox, and set gate (accepted or the first "
        "failing check), gate_detail, n_snippets and snippets_ok. --run rewrites a run's generated chunks in place "
        "(atomically; rerunning gives the same result); --input/--output gates any Parquet or JSONL file with a "
        "'text' column (optional 'finish_reason'). Prints the count per reason.",
    )
    p.add_argument("--run", metavar="RUN_DIR", help="run directory: gate generated/chunk-*.parquet in place with the run's recipe")
    p.add_argument("--input", metavar="FILE", help="a .parquet or .jsonl file with a 'text' column")
    p.add_argument("--output", metavar="FILE", help="where to write the gated rows (.parquet or .jsonl)")
    p.add_argument("--recipe", default="textbooks", help="with --input: recipe whose gate settings apply (built-in name or path; default textbooks)")
    p.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)), help="sandbox worker processes (default: CPU cores, at most 4)")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    p.set_defaults(func=cmd_gate)
