"""Safe YAML/JSON loading that remembers where every value came from.

PyYAML's SafeLoader follows YAML 1.1: ``yes``/``no``/``on``/``off`` become booleans,
``1.0e9`` stays a string and unquoted dates become ``datetime``. For legal texts
those surprises are bugs, so this loader uses YAML 1.2 core-schema scalars, refuses
duplicate keys, bounds aliases (an alias bomb expands exponentially when walked) and
records the line of every node so errors can say "file:line".

Hostile text is refused before a parser recurses into it: ``hms.prescan`` reads it once for
nesting depth and aliases (YAML), depth, duplicate keys and numbers (JSON), and every number is
bounded on its text (``hms.numbers``) before it is converted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from hms import numbers, prescan
from hms.errors import BadInput, clip, shown

MAX_FILE_BYTES = 1_000_000
MAX_YAML_BYTES = 256 * 1024  # PyYAML's pure-Python parser costs ~10 µs a byte; JSON (C) may be the larger
MAX_ALIASES = 50
MAX_DEPTH = 64
MAX_NODES = 200_000  # after alias expansion: bounds the work of anything that walks the data
MAX_ENTRIES = 10_000  # per mapping or list: the largest maxItems/maxProperties of any hms schema
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_SCALAR_TAGS = {*_NUMBER_TAGS, "tag:yaml.org,2002:str", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars and no timestamp magic."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]:
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), _first)


def _int(loader: _Loader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    return int(text, 0) if text.startswith(("0o", "0x")) else int(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _int)


class Document:
    """Parsed data plus a map from JSON path to source line (1-based; YAML only)."""

    def __init__(self, data: Any, lines: dict[Path_, int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def where(self, path: Path_) -> str:
        """``file:line at $.a.b`` for the deepest known ancestor of ``path``."""
        line = None
        for i in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:i]))
            if line is not None:
                break
        loc = self.source + (f":{line}" if line else "")
        return f"{loc} at {json_path(path)}"


def json_path(path: Path_) -> str:
    """``$.a[0].b``; a key that is long or not printable is shown clipped and escaped (it cannot forge a line)."""
    out = "$"
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            key = str(p)
            out += f".{key}" if key.isprintable() and len(key) <= 64 else f"[{shown(key, 64)}]"
    return out


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], depth: int, source: str) -> Any:
    line = node.start_mark.line + 1
    if len(lines) >= MAX_NODES and path not in lines:
        raise BadInput(f"more than {MAX_NODES} values after alias expansion (alias bomb?)", where=source)
    if depth > MAX_DEPTH:
        raise BadInput(f"nesting deeper than {MAX_DEPTH} levels", where=f"{source}:{line}")
    lines[path] = line
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if node.tag not in _COLLECTION_TAGS:
            raise BadInput(f"tag {shown(node.tag)} is not allowed", where=f"{source}:{line}")
        if len(node.value) > MAX_ENTRIES:
            raise BadInput(f"{len(node.value)} entries in {json_path(path)}; at most {MAX_ENTRIES}",
                           where=f"{source}:{line}")
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first: dict[Any, tuple[Any, int]] = {}  # key -> (the key as written first, its line)
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise BadInput("mapping keys must be plain scalars", where=f"{source}:{key_line}")
            key = _scalar(key_node, source, path)
            if key in out:
                was, was_line = first[key]
                same = "" if type(was) is type(key) and was == key else f", the same key as {shown(was)}"
                raise BadInput(f"duplicate key {shown(key)} in {json_path(path)}{same} (first on line {was_line})",
                               where=f"{source}:{key_line}")
            first[key] = (key, key_line)
            out[key] = _walk(value_node, (*path, str(key)), lines, depth + 1, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, (*path, i), lines, depth + 1, source) for i, v in enumerate(node.value)]
    return _scalar(node, source, path)


def _scalar(node: yaml.Node, source: str, path: Path_) -> Any:
    """A scalar's value (at ``path``, or a key in the mapping there); a number is bounded on its text first
    (5,000 digits never reach ``int()``)."""
    where = f"{source}:{node.start_mark.line + 1} at {json_path(path)}"
    if node.tag not in _SCALAR_TAGS:  # !!binary, !!timestamp, !!set, !python/…, custom tags
        raise BadInput(f"tag {shown(node.tag)} is not allowed", where=where)
    if node.tag in _NUMBER_TAGS and isinstance(node.value, str):
        why = numbers.refusal(node.value)
        if why is not None:
            raise BadInput(why, where=where)
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except (ValueError, OverflowError, KeyError) as e:  # e.g. !!int 1.5, !!bool maybe
        raise BadInput(f"{shown(node.value)} is not a valid {node.tag.rsplit(':', 1)[-1]} ({clip(str(e))})",
                       where=where) from None


_CONSTRUCTOR = _Loader("")
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def load_json(text: str, source: str) -> Any:
    """Strict JSON: no duplicate keys, NaN or out-of-bound numbers, nesting within MAX_DEPTH (all refused
    by the pre-scan with the line, before ``json`` recurses or converts anything)."""
    prescan.scan_json(text, source, MAX_DEPTH, MAX_ENTRIES)
    try:
        return json.loads(text, parse_constant=_no_constant(source))
    except json.JSONDecodeError as e:
        raise BadInput(f"malformed JSON: {e.msg}", where=f"{source}:{e.lineno}") from None
    except (ValueError, RecursionError) as e:  # not reached after the pre-scan; never a traceback
        raise BadInput(f"malformed JSON: {clip(str(e))}", where=source) from None


def _no_constant(source: str) -> Any:
    def refuse(name: str) -> Any:
        raise BadInput(f"{name} is not allowed: NaN and infinity are not numbers a protocol can use", where=source)

    return refuse


def load_text(text: str, source: str) -> Document:
    """Parse YAML (JSON is YAML too, but is parsed strictly as JSON when it looks like JSON)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise BadInput(f"file is larger than {MAX_FILE_BYTES} bytes", where=source)
    stripped = text.lstrip()
    if source.endswith(".json") or stripped.startswith("{"):
        return Document(load_json(text, source), {}, source)
    if size > MAX_YAML_BYTES:
        raise BadInput(f"YAML file is {size} bytes; the limit is {MAX_YAML_BYTES} (as JSON: {MAX_FILE_BYTES})",
                       where=source)
    prescan.scan_yaml(text, source, MAX_DEPTH, MAX_ALIASES)  # PyYAML never sees a document too deep to compose
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise BadInput(f"malformed YAML: {clip(e.problem or e.context or str(e))}", where=f"{source}{line}") from None
    except yaml.YAMLError as e:
        raise BadInput(f"malformed YAML: {clip(str(e))}", where=source) from None
    except RecursionError:  # not reached after the pre-scan; never a traceback
        raise BadInput("YAML nested too deeply", where=source) from None
    if len(nodes) != 1:
        raise BadInput(f"expected exactly one YAML document, found {len(nodes)}", where=source)
    lines: dict[Path_, int] = {}
    try:
        data = _walk(nodes[0], (), lines, 0, source)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        line = mark.line + 1 if mark else "?"
        raise BadInput(f"malformed YAML: {clip(str(e.problem))}", where=f"{source}:{line}") from None
    return Document(data, lines, source)


def load_file(path: str | Path) -> Document:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise BadInput(f"cannot read: {e.strerror}", where=str(p)) from None
    if size > MAX_FILE_BYTES:
        raise BadInput(f"file is {size} bytes; the limit is {MAX_FILE_BYTES}", where=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"not UTF-8 text (byte {e.start})", where=str(p)) from None
    return load_text(text, str(p))
