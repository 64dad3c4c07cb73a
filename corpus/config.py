"""YAML loading with line numbers, and validation of typed dataclasses.

Every config in the project (recipes, taxonomies, presets) goes through here, so a bad
file always fails the same way: ``file:line: key.path: what was expected``, with every
problem in the file listed at once.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file is malformed; the message names file, line, key and expectation."""


class Located:
    """Parsed YAML plus the line of every key path, for error messages."""

    def __init__(self, data: Any, lines: dict[tuple, int], source: str):
        self.data = data
        self.lines = lines
        self.source = source

    def where(self, path: tuple) -> str:
        # The nearest ancestor with a known line.
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return f"{self.source}:{self.lines[path[:n]]}"
        return self.source


class LocatedStack(Located):
    """The location of every key of a recipe merged from several files (``base:``) and
    overrides: a key's line comes from the first layer (child before base) that names it or
    its nearest ancestor, and a value set by an override (``overridden`` holds their key
    paths) is reported as coming from ``--set``."""

    def __init__(self, data: Any, layers: list[Located], overridden: list[tuple] = ()):
        super().__init__(data, layers[0].lines, layers[0].source)
        self.layers = layers
        self.overridden = [tuple(k) for k in overridden]

    def where(self, path: tuple) -> str:
        if any(path[: len(k)] == k for k in self.overridden):
            return "--set"
        for n in range(len(path), -1, -1):
            for layer in self.layers:
                if path[:n] in layer.lines:
                    return f"{layer.source}:{layer.lines[path[:n]]}"
        return self.source


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key (recursively), a key set to null in
    ``over`` is removed (so a recipe's default applies again, or an axis of the base is dropped),
    anything else (lists, scalars) in ``over`` replaces what ``base`` has. Neither input is modified."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


def format_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def load_yaml(path: str | Path, text: str | None = None) -> Located:
    """Parse YAML, rejecting duplicate keys, and remember the line of every node."""
    source = str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"{source}: cannot read: {e.strerror}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple, int] = {}
        data = _build(loader, node, (), lines, source) if node is not None else None
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise ConfigError(f"{source}:{line}: not valid YAML: {e.problem}") from None
    finally:
        loader.dispose()
    return Located(data, lines, source)


def _build(loader, node, path, lines, source):
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for k_node, v_node in node.value:
            key = loader.construct_object(k_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise ConfigError(f"{source}:{k_node.start_mark.line + 1}: {format_path(path)}: keys must be plain scalars")
            if key in out:
                raise ConfigError(
                    f"{source}:{k_node.start_mark.line + 1}: {format_path(path + (key,))}: "
                    f"duplicate key (first at line {lines[path + (key,)]})"
                )
            lines[path + (key,)] = k_node.start_mark.line + 1
            out[key] = _build(loader, v_node, path + (key,), lines, source)
            lines[path + (key,)] = k_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, v, path + (i,), lines, source) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false"}.get(tp, getattr(tp, "__name__", str(tp)))


def build(cls, data: Any, located: Located, path: tuple = ()) -> Any:
    """Build dataclass ``cls`` from ``data``; raise one ConfigError listing every problem."""
    errors: list[str] = []  # wrong keys and types: the object cannot be built
    problems: list[str] = []  # failed ``validate()`` checks of objects that could be built
    value = _convert(cls, data, located, path, errors, problems)
    if errors or problems:
        raise ConfigError("\n".join(errors + problems))
    return value


def _convert(tp, data, located, path, errors, problems):
    def fail(expected: str):
        errors.append(f"{located.where(path)}: {format_path(path)}: expected {expected}, got {type(data).__name__} {data!r:.60}")

    origin = typing.get_origin(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            trial: list[str] = []
            v = _convert(a, data, located, path, trial, [])
            if not trial:
                return v
        return fail(_type_name(tp))
    if origin is typing.Literal:
        if data in typing.get_args(tp):
            return data
        return fail(_type_name(tp))
    if origin is list:
        if not isinstance(data, list):
            return fail(_type_name(tp))
        (item,) = typing.get_args(tp)
        return [_convert(item, v, located, path + (i,), errors, problems) for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            return fail(_type_name(tp))
        _, item = typing.get_args(tp)
        return {str(k): _convert(item, v, located, path + (k,), errors, problems) for k, v in data.items()}
    if dataclasses.is_dataclass(tp):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return fail("a mapping")
        n_errors = len(errors)
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        kwargs = {}
        for k, v in data.items():
            if k not in fields:
                errors.append(
                    f"{located.where(path + (k,))}: {format_path(path + (k,))}: unknown key "
                    f"(expected one of: {', '.join(fields)})"
                )
                continue
            kwargs[k] = _convert(hints[k], v, located, path + (k,), errors, problems)
        for name, f in fields.items():
            if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(f"{located.where(path)}: {format_path(path + (name,))}: missing required key ({_type_name(hints[name])})")
        if len(errors) > n_errors:
            return None
        obj = tp(**kwargs)
        check = getattr(obj, "validate", None)
        if check is not None:
            for problem in check():
                key, msg = problem if isinstance(problem, tuple) else ((), problem)
                key = key if isinstance(key, tuple) else (key,)
                problems.append(f"{located.where(path + key)}: {format_path(path + key)}: {msg}")
        return obj
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if tp in (int, float, str, bool):
        if isinstance(data, tp) and not (tp is int and isinstance(data, bool)):
            return data
        return fail(_type_name(tp))
    raise TypeError(f"config type {tp!r} is not supported")


def to_dict(obj) -> Any:
    """A plain (YAML/JSON-ready) copy of a config dataclass."""
    return dataclasses.asdict(obj)


# -- documentation of config keys ------------------------------------------------------
@cache
def field_docs(cls) -> dict[str, str]:
    """The docstring of each field of dataclass ``cls``: the string literal right under the
    field in the class body (dedented; fields without one are absent)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    (node,) = (n for n in tree.body if isinstance(n, ast.ClassDef))
    docs = {}
    for stmt, after in zip(node.body, node.body[1:]):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


class KeyDoc(typing.NamedTuple):
    """One key of a config: dotted ``path``, ``type`` (as in error messages), ``default`` (YAML
    text; ``required`` for a field without a default; empty for a nested dataclass, whose keys
    follow it) and the field's docstring."""

    path: str
    type: str
    default: str
    doc: str


def yaml_text(value: Any) -> str:
    """``value`` as one line of YAML (flow style; JSON, which YAML reads too, where a string
    holds a line break)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9).strip()
    text = text[: -len("...")].strip() if text.endswith("\n...") else text
    return json.dumps(value, ensure_ascii=False) if "\n" in text else text


def config_keys(cls, prefix: str = "") -> list[KeyDoc]:
    """Every key of dataclass ``cls``, in field order. A field holding a nested dataclass is
    listed (type ``a mapping``) followed by its own keys; dict and list fields are leaves."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        path = prefix + f.name
        nested = dataclasses.is_dataclass(tp)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            default = "required"
        elif nested:
            default = ""  # the defaults of its keys, listed below
        elif f.default is not dataclasses.MISSING:
            default = yaml_text(f.default)
        else:
            default = yaml_text(f.default_factory())
        out.append(KeyDoc(path, _type_name(tp), default, docs.get(f.name, "")))
        if nested:
            out += config_keys(tp, path + ".")
    return out


def format_keys(keys: list[KeyDoc], width: int = 100) -> str:
    """The keys as text, one block per key: ``path  type = default`` then the docstring,
    indented and wrapped to ``width`` columns."""
    blocks = []
    for k in keys:
        head = f"{k.path}  ({k.type})"
        if k.default == "required":
            head += "  required"
        elif k.default:
            head += f"  default: {k.default}"
        doc = " ".join(k.doc.split()) or "(undocumented)"
        body = textwrap.fill(doc, width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
        blocks.append(f"{head}\n{body}")
    return "\n".join(blocks) + "\n"
