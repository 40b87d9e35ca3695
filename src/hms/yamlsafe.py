"""Safe YAML/JSON loading that remembers where every value came from.

PyYAML's SafeLoader follows YAML 1.1: ``yes``/``no``/``on``/``off`` become booleans,
``1.0e9`` stays a string and unquoted dates become ``datetime``. For legal texts
those surprises are bugs, so this loader uses YAML 1.2 core-schema scalars, refuses
duplicate keys, bounds aliases (an alias bomb expands exponentially when walked) and
records the line of every node so errors can say "file:line".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from hms.errors import BadInput

MAX_FILE_BYTES = 1_000_000
MAX_ALIASES = 50
MAX_DEPTH = 64
MAX_NODES = 200_000  # after alias expansion: bounds the work of anything that walks the data

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
    out = "$"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], depth: int, source: str) -> Any:
    if len(lines) >= MAX_NODES and path not in lines:
        raise BadInput(f"more than {MAX_NODES} values after alias expansion (alias bomb?)", where=source)
    if depth > MAX_DEPTH:
        raise BadInput(f"nesting deeper than {MAX_DEPTH} levels", where=f"{source}:{node.start_mark.line + 1}")
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _COLLECTION_TAGS:
        raise BadInput(f"tag {node.tag!r} is not allowed", where=f"{source}:{node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise BadInput("mapping keys must be plain scalars", where=f"{source}:{key_node.start_mark.line + 1}")
            key = _Loader.construct_object(_CONSTRUCTOR, key_node)
            if key in out:
                raise BadInput(
                    f"duplicate key {key!r} at {json_path(path)}", where=f"{source}:{key_node.start_mark.line + 1}"
                )
            out[key] = _walk(value_node, (*path, str(key)), lines, depth + 1, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, (*path, i), lines, depth + 1, source) for i, v in enumerate(node.value)]
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    if isinstance(value, bytes | set) or node.tag.startswith("tag:yaml.org,2002:binary"):
        raise BadInput("binary and set values are not allowed", where=f"{source}:{node.start_mark.line + 1}")
    return value


_CONSTRUCTOR = _Loader("")
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def load_text(text: str, source: str) -> Document:
    """Parse YAML (JSON is YAML too, but is parsed strictly as JSON when it looks like JSON)."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise BadInput(f"file is larger than {MAX_FILE_BYTES} bytes", where=source)
    stripped = text.lstrip()
    if source.endswith(".json") or stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(f"malformed JSON: {e.msg}", where=f"{source}:{e.lineno}") from None
        except RecursionError:
            raise BadInput("JSON nested too deeply", where=source) from None
        return Document(data, {}, source)
    try:
        aliases = 0
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise BadInput(
                        f"more than {MAX_ALIASES} YAML aliases (alias bomb?)",
                        where=f"{source}:{event.start_mark.line + 1}",
                    )
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise BadInput(f"malformed YAML: {e.problem or e.context}", where=f"{source}{line}") from None
    except yaml.YAMLError as e:
        raise BadInput(f"malformed YAML: {e}", where=source) from None
    if len(nodes) != 1:
        raise BadInput(f"expected exactly one YAML document, found {len(nodes)}", where=source)
    lines: dict[Path_, int] = {}
    try:
        data = _walk(nodes[0], (), lines, 0, source)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        raise BadInput(f"malformed YAML: {e.problem}", where=f"{source}:{mark.line + 1 if mark else '?'}") from None
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
