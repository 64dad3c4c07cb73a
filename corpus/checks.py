"""The quality gate's checks: one registry of small named checks, in the order they run.

An extract is split into prose and code blocks (fenced, with or without a language tag; code
the model wrote without fences is detected and either repaired or rejected). The checks run in
the order of ``REGISTRY``; the first that fails is the record's ``gate`` (else ``"accepted"``)
and its detail (``gate_detail``) says why in a few words. The names, the order, the settings
each check reads (fields of ``corpus.settings.GateConfig``) and what a rejection means all come
from ``REGISTRY``; ``checks_table()`` renders it for the README. The last two checks run the
extract's snippets in the sandbox (``corpus.gate`` does that, for the extracts that passed every
other check, so the sandbox sees the fewest programs).
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

ACCEPTED = "accepted"


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
def _repetition(text: str, ex: Extract, cfg) -> str | None:
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


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or "").split(".")[0])
    return names


# -- the checks ------------------------------------------------------------------------------
@dataclass
class Doc:
    """What the checks look at: the text, its finish reason, its parse, and the outline it was
    written from (recipes with an outline stage)."""

    text: str
    finish_reason: str | None
    ex: Extract
    outline: str | None = None

    @cached_property
    def words(self) -> int:
        return len(self.text.split())

    @cached_property
    def snippets(self) -> list[str]:
        return self.ex.snippets

    @cached_property
    def trees(self) -> list[ast.Module | SyntaxError]:
        """Each snippet parsed once (``ast``), or the error that stopped it."""
        out = []
        for s in self.snippets:
            try:
                out.append(ast.parse(s))
            except SyntaxError as e:
                out.append(e)
        return out

    @cached_property
    def syntax_errors(self) -> list[tuple[int, SyntaxError]]:
        """(1-based snippet number, error) of the snippets that do not parse."""
        return [(k, t) for k, t in enumerate(self.trees, 1) if isinstance(t, SyntaxError)]

    @cached_property
    def parsed(self) -> list[str]:
        return [s for s, t in zip(self.snippets, self.trees) if not isinstance(t, SyntaxError)]

    @cached_property
    def parsed_trees(self) -> list[ast.Module]:
        """The trees of ``parsed``, in the same order."""
        return [t for t in self.trees if not isinstance(t, SyntaxError)]

    @cached_property
    def exercise(self) -> Exercise | str:
        """The extract as an exercise (``gate.exercise``), or why it is not one (``_exercise``)."""
        return _exercise(self)


def _truncated(d: Doc, cfg) -> str | None:
    if d.finish_reason == "length":
        return "finish reason length"
    return "unclosed code fence" if d.ex.unclosed_fence else None


def _too_short(d: Doc, cfg) -> str | None:
    return f"{d.words} words < {cfg.min_words}" if d.words < cfg.min_words else None


def _too_long(d: Doc, cfg) -> str | None:
    return f"{d.words} words > {cfg.max_words}" if d.words > cfg.max_words else None


def _refusal(d: Doc, cfg) -> str | None:
    prose = "\n".join(d.ex.prose)
    for pattern in cfg.refusal_patterns:
        m = re.search(pattern, prose, re.IGNORECASE | re.MULTILINE)
        if m:
            return f"matched {m.group(0).strip()!r}"
    return None


def _unfenced(d: Doc, cfg) -> str | None:
    return f"{d.ex.unfenced} unfenced code block(s)" if cfg.unfenced_code == "reject" and d.ex.unfenced else None


def _no_code(d: Doc, cfg) -> str | None:
    return "no Python snippet" if cfg.require_code and not d.snippets else None


def _too_many(d: Doc, cfg) -> str | None:
    n = len(d.snippets)
    return f"{n} snippets > {cfg.max_snippets}" if n > cfg.max_snippets else None


def _snippet_too_long(d: Doc, cfg) -> str | None:
    for k, s in enumerate(d.snippets, 1):
        if len(s.splitlines()) > cfg.max_snippet_lines:
            return f"snippet {k}: {len(s.splitlines())} lines > {cfg.max_snippet_lines}"
    return None


def _text_after_code(d: Doc, cfg) -> str | None:
    n = d.ex.words_after_code
    return f"{n} words after the last code block > {cfg.max_words_after_code}" if n > cfg.max_words_after_code else None


def _syntax(d: Doc, cfg) -> str | None:
    if d.syntax_errors:
        k, e = d.syntax_errors[0]
        return f"snippet {k}: {e.msg} (line {e.lineno})"
    return None


def _disallowed_import(d: Doc, cfg) -> str | None:
    allowed = set(sys.stdlib_module_names) | set(cfg.allowed_modules)
    for k, tree in enumerate(d.parsed_trees, 1):
        bad = sorted(_imports(tree) - allowed)
        if bad:
            return f"snippet {k} imports {', '.join(bad)}"
    return None


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _dead_code(body: list[ast.stmt], unused_too: bool = True) -> str | None:
    """Why a module ``body`` holds code that never runs, or None: no statement at all (only comments),
    a top-level function or class defined twice (the first one is dead), or (``unused_too``) one that
    nothing outside its own body uses (calls, or passes as a value), so running it never runs that."""
    if not body:
        return "has no statement (only comments)"
    defs = [n for n in body if isinstance(n, _DEFS)]
    names = [n.name for n in defs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return f"defines {', '.join(twice[:3])} twice"
    if not unused_too:
        return None
    unused = [d.name for d in defs if not any(isinstance(n, ast.Name) and n.id == d.name and isinstance(n.ctx, ast.Load)
                                              for stmt in body if stmt is not d for n in ast.walk(stmt))]
    if unused:
        return f"defines {', '.join(unused[:3])} but never uses {'it' if len(unused) == 1 else 'them'}"
    return None


def _dead_code_check(d: Doc, cfg) -> str | None:
    if not cfg.reject_dead_code:
        return None
    bodies = [tree.body for tree in d.parsed_trees]
    for k, body in enumerate(bodies, 1):
        # Joined snippets: a later snippet may use an earlier one's function (checked on the whole below).
        why = _dead_code(body, unused_too=cfg.standalone_snippets)
        if why:
            return f"snippet {k} {why}"
    if not cfg.standalone_snippets and bodies:
        # A later snippet may redefine an earlier one's function on purpose ("a better version"): the last one counts.
        latest = {getattr(stmt, "name", None) or id(stmt): stmt for body in bodies for stmt in body}
        why = _dead_code(list(latest.values()))
        if why:
            return f"the snippets {why}"
    return None


# -- the outline stage ----------------------------------------------------------------------
# The line of an outline that gives the key sentence: "Sentence: ...", "**Key sentence:** ...".
_KEY_SENTENCE = re.compile(r"^\W*(?:key\s+)?sentence\W*:(.+)$", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def key_sentence(outline: str | None) -> str | None:
    """The sentence an outline says its extract must contain: its "Sentence:" line, or the whole
    outline when it is one sentence on one line (an outline stage that asks for the key sentence
    alone); else None."""
    outline = (outline or "").strip()
    m = _KEY_SENTENCE.search(outline)
    if m:
        s = m.group(1)
    elif "\n" not in outline and len(_SENTENCE_END.findall(outline)) <= 1 and len(outline.split()) <= 40:
        s = outline
    else:
        s = ""
    return s.strip().strip("*\"'“” ").strip() or None


def _normal_words(text: str) -> str:
    """Lower-case words and numbers separated by single spaces, padded with one space each side."""
    return " " + " ".join(re.findall(r"\w+", text.lower())) + " "


def _outline_not_followed(d: Doc, cfg) -> str | None:
    if d.outline is None:
        return None
    s = key_sentence(d.outline)
    if s is None:
        return "the outline gives no key sentence (no 'Sentence:' line, and more than one sentence)"
    return None if _normal_words(s) in _normal_words(d.text) else f"lacks the outline's key sentence {s[:80]!r}"


# -- exercises ---------------------------------------------------------------------------------
@dataclass
class Exercise:
    """An exercise's parts (phi-1's CodeExercises): the statement (everything up to the end of the
    function's docstring: imports, signature, docstring), the solution (the function's body after
    its docstring) and the tests (the top-level asserts that call it)."""

    name: str
    statement: str
    solution: str
    tests: str


def _exercise(d: Doc) -> Exercise | str:
    """The exercise of an extract: its first snippet with a top-level function that has a docstring,
    and the asserts of every snippet that call that function; or why there is none."""
    for code, tree in zip(d.parsed, d.parsed_trees):
        for node in tree.body:
            if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node)):
                continue
            lines = code.splitlines(keepends=True)
            doc_end = node.body[0].end_lineno
            solution = "".join(lines[doc_end : node.end_lineno])
            rest = node.body[1:]
            if not rest or all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in rest):
                return f"{node.name} has no solution after its docstring"
            tests = [ast.get_source_segment(c, stmt) for c, t in zip(d.parsed, d.parsed_trees) for stmt in t.body
                     if isinstance(stmt, ast.Assert) and any(isinstance(n, ast.Name) and n.id == node.name for n in ast.walk(stmt))]
            return Exercise(node.name, "".join(lines[:doc_end]), solution, "\n".join(tests) + "\n" if tests else "")
    return "no function with a docstring"


def _bad_exercise(d: Doc, cfg) -> str | None:
    return d.exercise if cfg.exercise and isinstance(d.exercise, str) else None


def _no_tests(d: Doc, cfg) -> str | None:
    ex = d.exercise if cfg.exercise else None
    return f"no assert calls {ex.name}" if isinstance(ex, Exercise) and not ex.tests else None


@dataclass
class Program:
    """What the sandbox runs for an extract: one snippet, or all its snippets as one program, with
    the outputs the extract says it prints."""

    code: str
    claims: list[str]


# A comment that states what the code prints: "# Output: 25", "# prints: [1, 2]", "# Expected output: 3",
# and "# -> 25" / "# => 25" on a line that prints.
_CLAIM = re.compile(r"#\s*(?:expected\s+)?(?:output|outputs|prints)\s*:\s*(?P<a>.+?)\s*$|^(?=.*\bprint\().*#\s*(?:->|=>)\s*(?P<b>.+?)\s*$", re.IGNORECASE)
# Prose that introduces an output listing: "Output:", "This prints:", "When you run it, you get the output:".
_OUTPUT_INTRO = re.compile(r"\b(?:output|prints?)\b[^.!?]*:\s*$", re.IGNORECASE)


def _comment_claims(code: str) -> list[str]:
    return [m.group("a") or m.group("b") for line in code.splitlines() if (m := _CLAIM.search(line))]


def _programs(d: Doc, cfg) -> list[Program]:
    """What the sandbox runs, with claims: the snippet's own output comments, and a fenced non-Python
    block that follows it under a short line like "Output:" (the listing of what it prints)."""
    if d.syntax_errors or not d.parsed:  # rejected before the sandbox, or nothing to run
        return []
    claims: list[list[str]] = []  # per snippet, in order (no syntax errors: d.parsed is every snippet)
    for i, b in enumerate(d.ex.blocks):
        if b.python:
            claims.append(_comment_claims(b.code))
        elif claims and b.code.strip() and len(d.ex.prose[i].split()) <= 12 and _OUTPUT_INTRO.search(d.ex.prose[i].strip()):
            claims[-1].append(b.code.strip())  # prose[i] is the text just before block i
    if cfg.standalone_snippets:
        return [Program(code, c) for code, c in zip(d.parsed, claims)]
    return [Program("\n\n".join(d.parsed), [c for cs in claims for c in cs])]


def _claim_holds(claim: str, stdout: str) -> bool:
    """Whether what was printed contains the claimed output (whitespace-insensitive; quotes around a
    claimed string may be dropped, since print shows a str without them)."""
    out, c = " ".join(stdout.split()), " ".join(claim.split())
    return c in out or (len(c) >= 2 and c[0] == c[-1] and c[0] in "'\"" and c[1:-1] in out)


@dataclass(frozen=True)
class Check:
    name: str
    """The rejection reason written to ``gate``."""
    meaning: str
    settings: tuple[str, ...]
    """The GateConfig fields the check reads."""
    test: Callable[[Doc, Any], str | None] | None
    """Returns the detail when the extract fails; None for the checks the sandbox decides."""


REGISTRY: tuple[Check, ...] = (
    Check("empty", "no text (failed request) or only whitespace", (), None),
    Check("truncated", "finish reason `length`, or an unclosed fence", (), _truncated),
    Check("too_short", "fewer words than `min_words` (prose + code)", ("min_words",), _too_short),
    Check("too_long", "more words than `max_words`", ("max_words",), _too_long),
    Check("refusal", 'refusals and meta-talk: "As an AI", "Sure! Here is", "I hope this helps", ...', ("refusal_patterns",), _refusal),
    Check("unfenced_code", "code outside fences, when `unfenced_code: reject`", ("unfenced_code",), _unfenced),
    Check("no_code", "no Python snippet", ("require_code",), _no_code),
    Check("too_many_snippets", "more snippets than allowed", ("max_snippets",), _too_many),
    Check("snippet_too_long", "a snippet with too many lines", ("max_snippet_lines",), _snippet_too_long),
    Check("text_after_code", "prose after the last code block (the default template forbids it)", ("max_words_after_code",), _text_after_code),
    Check("repetition", "repeated lines; Gopher top 2/3/4-gram and duplicate 5-10-gram character fractions of the prose",
          ("max_duplicate_line_fraction", "max_top_ngram_fraction", "max_duplicate_ngram_fraction"), lambda d, cfg: _repetition(d.text, d.ex, cfg)),
    Check("outline_not_followed", "an extract that lacks its outline's key sentence (recipes with an outline stage; "
          "normalised match: case, punctuation and spacing ignored)", (), _outline_not_followed),
    Check("snippet_syntax", "a snippet that does not parse (`ast`)", (), _syntax),
    Check("bad_exercise", "`exercise: true`: no top-level function with a docstring (the statement), or none with a body "
          "after it (the solution)", ("exercise",), _bad_exercise),
    Check("no_tests", "`exercise: true`: no top-level assert that calls the exercise's function", ("exercise",), _no_tests),
    Check("disallowed_import", "an import outside the standard library + allow-list", ("allowed_modules",), _disallowed_import),
    Check("dead_code", "a snippet with code that never runs: a function or class nothing outside its own body uses "
          "(running the snippet would not test it), one defined twice in a snippet, or only comments", ("reject_dead_code",), _dead_code_check),
    Check("snippet_error", "a snippet that raises, is killed by a signal, or floods its output, run in the sandbox "
          "(`standalone_snippets`: each snippet alone, or all in order as one program)", ("standalone_snippets", "memory_mb"), None),
    Check("snippet_timeout", "a snippet over its wall-clock time limit (CPU time is capped at the same)", ("timeout",), None),
    Check("tests_failed", "`exercise: true`: an assert fails when the snippets run (the tests against the solution)", ("exercise",), None),
    Check("wrong_output", 'a comment that says what the code prints ("# Output: 25", "print(f(5))  # -> 25") '
          "or an output listing after a snippet (\"Output:\" + a fenced block) that is not in what it printed", ("check_output_claims",), None),
)
CHECKS: tuple[str, ...] = tuple(c.name for c in REGISTRY)
SANDBOX_CHECKS = frozenset({"snippet_error", "snippet_timeout", "tests_failed", "wrong_output"})


def active(cfg) -> list[Check]:
    """The checks ``cfg`` leaves on, in order."""
    return [c for c in REGISTRY if c.name not in cfg.skip]


def runs_code(cfg) -> bool:
    """Whether the settings need the sandbox."""
    return bool(SANDBOX_CHECKS - set(cfg.skip))


def check_text(text: str | None, finish_reason: str | None, cfg, outline: str | None = None
               ) -> tuple[str, str, int, int | None, list[Program], Exercise | None]:
    """Every check but the sandbox's: (gate, detail, n_snippets, snippets_ok, programs to run, the
    exercise's parts when ``cfg.exercise`` and the extract passed). ``outline``: the outline the
    extract was written from (None without an outline stage)."""
    on = {c.name for c in active(cfg)}
    if text is None or not text.strip():
        return ("empty", "no text", 0, None, [], None) if "empty" in on else (ACCEPTED, "", 0, None, [], None)
    d = Doc(text, finish_reason, parse(text, cfg.unfenced_code), outline)
    n = len(d.snippets)
    for c in active(cfg):
        if c.test is not None:
            detail = c.test(d, cfg)
            if detail:
                return c.name, detail, n, None, [], None
    ex = d.exercise if cfg.exercise and isinstance(d.exercise, Exercise) else None
    if not d.parsed or not runs_code(cfg):
        return ACCEPTED, "", n, len(d.parsed), [], ex
    return ACCEPTED, "", n, None, _programs(d, cfg), ex


def _failed_line(stderr: str, code: str) -> str | None:
    """The program's line where its traceback ends (the assert that failed), or None."""
    lines = re.findall(r'File "<snippet>", line (\d+)', stderr)
    src = code.splitlines()
    return src[int(lines[-1]) - 1].strip() if lines and int(lines[-1]) <= len(src) else None


def verdict(results, cfg, n_parsed: int, programs: list[Program]) -> tuple[str, str, int]:
    """Gate, detail and snippets_ok from an extract's sandbox results (``corpus.sandbox.Result``),
    one per program of ``programs``."""
    on = {c.name for c in active(cfg)}
    ok = sum(r.status == "ok" for r in results)
    snippets_ok = ok if cfg.standalone_snippets else (n_parsed if ok else 0)
    for k, r in enumerate(results, 1):
        where = f"snippet {k}: " if cfg.standalone_snippets else ""
        if r.status == "error" and cfg.exercise and "tests_failed" in on and (r.error or "").startswith("AssertionError"):
            return "tests_failed", f"{where}{_failed_line(r.stderr, programs[k - 1].code) or r.error}"[:300], snippets_ok
        if r.status == "timeout" and "snippet_timeout" in on:
            return "snippet_timeout", f"{where}{r.error}", snippets_ok
        if r.status in ("error", "killed", "truncated") and "snippet_error" in on:
            return "snippet_error", f"{where}{r.status}: {r.error}"[:300], snippets_ok
    if "wrong_output" in on and cfg.check_output_claims:
        for k, (r, program) in enumerate(zip(results, programs), 1):
            for claim in program.claims:
                if r.status == "ok" and not _claim_holds(claim, r.stdout):
                    where = f"snippet {k}: " if cfg.standalone_snippets else ""
                    printed = " ".join(r.stdout.split())
                    return "wrong_output", f"{where}says it prints {claim!r}, printed {printed[:80]!r}"[:300], snippets_ok
    return ACCEPTED, "", snippets_ok


def checks_table(cfg) -> str:
    """The registry as a Markdown table with the settings' values in ``cfg`` (a GateConfig): the
    README's gate table is ``checks_table(GateConfig())``."""
    rows = ["| name | rejects | setting (default) |", "|---|---|---|"]
    for c in REGISTRY:
        settings = ", ".join(f"`{s}` ({getattr(cfg, s)})" for s in c.settings)
        rows.append(f"| `{c.name}` | {c.meaning} | {settings} |")
    return "\n".join(rows)


def format_counts(counts: Counter) -> str:
    """Per-reason counts, accepted first, then the checks in their order."""
    total = sum(counts.values())
    lines = [f"{total} extracts"]
    for name in (ACCEPTED, *CHECKS):
        if counts.get(name):
            lines.append(f"  {name:<18} {counts[name]:>7}  {counts[name] / total:6.1%}")
    return "\n".join(lines)
