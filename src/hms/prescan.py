"""Linear-time scans of YAML and JSON text, before any parser sees it.

Parsers recurse: ``json`` and PyYAML's composer once per nesting level (a RecursionError traceback
at ~600 levels of JSON or ~330 of YAML), and PyYAML's pure-Python scanner keeps one pending
"simple key" per open flow collection and walks them all at every token, so its time grows with
the square of the depth (10,000 levels, 23 KB: 30 s of CPU, then the RecursionError). These scans
read the text once, token by token, with no recursion, and refuse it naming the line:

* ``scan_yaml``: nesting depth of block collections (by indentation, as PyYAML's scanner tracks
  it) and flow collections, and the number of aliases. It mirrors where PyYAML's tokens start —
  quoted, plain and block scalars and comments are skipped exactly where PyYAML skips them — so the
  depth it reports is an upper bound of what the composer will meet (it may count one level more:
  a flow collection that could be a mapping key, a single-pair mapping inside ``[…]``).
* ``scan_json``: nesting depth, entries per container, duplicate keys (``json`` keeps the last one
  silently), and every number checked on its text (``hms.numbers``), with NaN/Infinity refused.

Both return what they measured, so tests can compare them with the parsers on random documents.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass

from hms import numbers
from hms.errors import BadInput, clip, shown

_BREAKS = re.compile(r"\r\n?|[\x85\u2028\u2029]")  # every line break PyYAML counts, as "\n"
_SINGLE = re.compile(r"'[^']*(?:''[^']*)*'?")
_DOUBLE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
# Where a plain scalar ends (PyYAML's scan_plain): block context: ": ", " #", the line's end;
# flow context: also at ",?[]{}" and a ":" before them. Flow plain scalars run on across lines.
_PLAIN_BLOCK_END = re.compile(r":(?=[ \t\n]|\Z)|[ \t]#|\n")
_PLAIN_FLOW_END = re.compile(r":(?=[ \t\n,\[\]{}]|\Z)|[,?\[\]{}]|[ \t\n]#")
_ANCHOR = re.compile(r"[0-9A-Za-z_-]*")  # an anchor's or alias's name (PyYAML's scan_anchor)
_TAG_END = re.compile(r"[ \t\n]|\Z")  # a tag runs to whitespace, ",[]" included (PyYAML's scan_tag_uri)
_BLOCK_HEADER = re.compile(r"[|>]([+-]?)([1-9]?)([+-]?)")
_SPACES = re.compile(r" *")
# The common line, decided without the token loop: "- - key: plain value" (dashes optional, value optional),
# with no character that could start or end anything else (':', '#', tabs; the value starts like a plain scalar).
_SIMPLE_LINE = re.compile(
    r"((?:- +)*)[A-Za-z0-9_][A-Za-z0-9_ .-]*:(?: +((?:[A-Za-z0-9_(.$+~]|-[0-9.])[^\n:#\t]*)?)?(?:\n|\Z)"
)
_BLANKS = re.compile(r"[ \t]*")


@dataclass
class Scan:
    depth: int  # deepest nesting met (an upper bound for YAML)
    aliases: int = 0


def scan_yaml(text: str, source: str, max_depth: int, max_aliases: int) -> Scan:
    """Refuse YAML nested deeper than ``max_depth`` or with more than ``max_aliases`` aliases, in one pass."""
    s = _BREAKS.sub("\n", text)
    if s.startswith("\ufeff"):
        s = s[1:]  # PyYAML skips a leading BOM (and counts no column for it)
    return _Yaml(s, source, max_depth, max_aliases).run()


class _Yaml:
    def __init__(self, s: str, source: str, max_depth: int, max_aliases: int) -> None:
        self.s, self.n, self.source = s, len(s), source
        self.max_depth, self.max_aliases = max_depth, max_aliases
        self.blocks: list[tuple[int, str]] = []  # open block collections: (column, "m" | "s"), as PyYAML's indents
        self.ls = 0  # where the current line starts
        self.cont: int | None = None  # a plain scalar may continue on lines indented at least this much
        self.flow_max = 0
        self.seen = Scan(0)

    # ---- bookkeeping ---------------------------------------------------------------------------------------
    def refuse(self, message: str, at: int) -> BadInput:
        return BadInput(message, where=f"{self.source}:{self.s.count(chr(10), 0, at) + 1}")

    def reach(self, depth: int, at: int) -> None:
        if depth > self.seen.depth:
            self.seen.depth = depth
            if depth > self.max_depth:
                raise self.refuse(f"nesting deeper than {self.max_depth} levels (refused before parsing)", at)

    def alias(self, at: int) -> None:
        self.seen.aliases += 1
        if self.seen.aliases > self.max_aliases:
            raise self.refuse(f"more than {self.max_aliases} YAML aliases (alias bomb?)", at)

    def moved(self, start: int, end: int) -> None:
        """The text between start and end was skipped: keep the current line's start right."""
        k = self.s.rfind("\n", start, end)
        if k >= 0:
            self.ls = k + 1

    def unwind(self, col: int) -> None:
        b = self.blocks
        while b and b[-1][0] > col:
            b.pop()

    def open(self, col: int, kind: str, at: int) -> None:
        """A block collection of ``kind`` at ``col`` (PyYAML: add_indent, or an indentless sequence)."""
        b = self.blocks
        self.unwind(col)
        if b and b[-1][0] == col:
            if b[-1][1] == kind:
                return
            if kind == "m":  # a key at the column of an indentless sequence ends that sequence
                b.pop()
                if b and b[-1] == (col, "m"):
                    return
        b.append((col, kind))
        self.reach(len(b), at)

    # ---- the scan --------------------------------------------------------------------------------------------
    def run(self) -> Scan:
        s, n = self.s, self.n
        p = 0
        while p < n:
            self.ls = p
            eol = s.find("\n", p)
            eol = n if eol < 0 else eol
            j = _SPACES.match(s, p, eol).end()  # type: ignore[union-attr]
            col = j - p
            if j == eol:  # blank line: a plain scalar may still continue after it
                p = eol + 1
                continue
            c = s[j]
            if c == "#":
                self.cont = None
                p = eol + 1
                continue
            if col == 0 and s.startswith(("---", "..."), j) and (j + 3 == eol or s[j + 3] in " \t"):
                self.cont = None
                self.blocks.clear()
                p = eol + 1 if c == "." else self.tokens(j + 3, simple_ok=False)
                continue
            if col == 0 and c == "%":  # a directive
                self.cont = None
                p = eol + 1
                continue
            if self.cont is not None and col >= self.cont:
                p = self.continuation(j, eol)
                continue
            self.cont = None
            self.unwind(col)
            m = _SIMPLE_LINE.match(s, j)
            if m is None:
                p = self.tokens(j)
                continue
            dashes = m.group(1)
            for k, ch in enumerate(dashes):
                if ch == "-":
                    self.open(col + k, "s", j)
            self.open(col + len(dashes), "m", j)
            self.cont = col + len(dashes) + 1 if m.group(2) else None
            p = m.end()
        return self.seen

    def continuation(self, j: int, eol: int) -> int:
        """A line of a multi-line plain scalar: text until ': ' (then tokens again), ' #' or its end."""
        m = _PLAIN_BLOCK_END.search(self.s, j, eol)
        if m is None:
            return eol + 1
        self.cont = None
        if m.group()[0] == ":":
            return self.tokens(m.start())  # a ':' PyYAML takes as a complex value: a mapping at its column
        return eol + 1  # a comment ends the scalar

    def tokens(self, p: int, simple_ok: bool = True) -> int:
        """Block-context tokens from ``p`` to the end of the line; returns where the next line starts.

        ``simple_ok`` is PyYAML's allow_simple_key: where a token may start a key (``a: b``), the first
        node token there (properties, scalar, alias or flow collection) is the key a ':' opens a mapping for.
        """
        s, n = self.s, self.n
        key_col: int | None = None  # column of the possible simple key on this line
        flow_key: int | None = None  # the depth reached inside a flow collection that is that key
        while True:
            p = _BLANKS.match(s, p).end()  # type: ignore[union-attr]
            if p >= n:
                return n
            c = s[p]
            if c == "\n":
                return p + 1
            if c == "#":
                eol = s.find("\n", p)
                return n if eol < 0 else eol + 1
            col = p - self.ls
            self.unwind(col)  # PyYAML unwinds its indents to the column of every block-context token
            nxt = s[p + 1] if p + 1 < n else "\n"
            indicator = c in "-?:" and nxt in " \t\n"
            starts_key = simple_ok and not indicator and c not in "]},|>"
            if starts_key:
                key_col, flow_key, simple_ok = col, None, False
            if indicator:
                if c == ":" and key_col is not None:
                    before = len(self.blocks)
                    self.open(key_col, "m", p)
                    if flow_key is not None and len(self.blocks) > before:
                        self.reach(flow_key + 1, p)  # the flow collection was a key: it sits one level deeper
                    simple_ok = False
                else:
                    self.open(col, "s" if c == "-" else "m", p)
                    simple_ok = True
                key_col = flow_key = None
                p += 1
            elif c in "[{":
                start = p
                p = self.flow(p, len(self.blocks))
                self.moved(start, p)
                if key_col is not None:  # the key, or the content of the key's properties (&a [b]: c)
                    flow_key = max(flow_key or 0, self.flow_max)
            elif c in "]},":
                simple_ok = c == ","
                p += 1
            elif c in "'\"":
                start = p
                p = (_SINGLE if c == "'" else _DOUBLE).match(s, p).end()  # type: ignore[union-attr]
                self.moved(start, p)
            elif c in "|>":
                return self.block_scalar(p)
            elif c == "!":
                p = _TAG_END.search(s, p + 1).start()  # type: ignore[union-attr]
            elif c in "&*":
                if c == "*":
                    self.alias(p)
                p = _ANCHOR.match(s, p + 1).end()  # type: ignore[union-attr]
            else:  # a plain scalar
                m = _PLAIN_BLOCK_END.search(s, p + 1)
                if m is None:
                    return n
                g = m.group()
                if g[0] == ":":
                    p = m.start()
                elif g == "\n":
                    self.cont = (self.blocks[-1][0] if self.blocks else -1) + 1
                    return m.end()
                else:  # " #": a comment to the end of the line
                    eol = s.find("\n", m.end())
                    return n if eol < 0 else eol + 1

    def block_scalar(self, p: int) -> int:
        """Skip a ``|`` or ``>`` scalar's header and content lines as PyYAML's scan_block_scalar does."""
        s, n = self.s, self.n
        m = _BLOCK_HEADER.match(s, p)
        increment = int(m.group(2)) if m and m.group(2) else None
        eol = s.find("\n", p)
        if eol < 0:
            return n
        q = eol + 1
        min_indent = max((self.blocks[-1][0] if self.blocks else -1) + 1, 1)
        if increment is not None:
            indent = min_indent + increment - 1
        else:  # the first non-empty line (or the widest empty line before it) sets the indentation
            widest, r = 0, q
            while r < n:
                e = s.find("\n", r)
                e = n if e < 0 else e
                k = r
                while k < e and s[k] == " ":
                    k += 1
                widest = max(widest, k - r)
                if k < e:
                    break
                r = e + 1
            indent = max(min_indent, widest)
        r = q
        while r < n:
            e = s.find("\n", r)
            e = n if e < 0 else e
            k = r
            while k < e and k - r < indent and s[k] == " ":
                k += 1
            if k - r < indent and k < e:  # less indented and not empty: the scalar has ended
                break
            r = e + 1
        return min(r, n)

    def flow(self, p: int, base: int) -> int:
        """A flow collection starting at ``p`` inside ``base`` block levels: returns the position after its
        closing bracket (or the end); ``self.flow_max`` is the deepest level reached inside it."""
        s, n = self.s, self.n
        # Per open collection: [is a sequence, its current entry is an implicit single-pair mapping ([a: b]),
        # the deepest level reached in that entry (a key that turns into a pair sits one level deeper),
        # the deepest level reached anywhere inside it].
        stack: list[list] = []
        depth = self.flow_max = base

        def level(d: int, at: int) -> None:
            self.reach(d, at)
            self.flow_max = max(self.flow_max, d)

        while p < n:
            c = s[p]
            if c in " \t\n":
                p += 1
            elif c in "[{":
                depth += 1
                stack.append([c == "[", False, depth, depth])
                level(depth, p)
                p += 1
            elif c in "]}":  # PyYAML's scanner does not pair the brackets either
                p += 1
                if stack:
                    child = stack.pop()
                    depth -= 1 + child[1]
                    if stack:
                        stack[-1][2] = max(stack[-1][2], child[3])
                        stack[-1][3] = max(stack[-1][3], child[3])
                if not stack:
                    return p
            elif c == ",":
                if stack:
                    top = stack[-1]
                    if top[1]:
                        top[1] = False
                        depth -= 1
                    top[2] = depth
                p += 1
            elif c in ":?" or (c == "-" and p + 1 < n and s[p + 1] in " \t\n"):
                # In flow context PyYAML takes ':' and '?' as indicators wherever a token starts (and '- ' too)
                top = stack[-1] if stack else None
                if c != "-" and top is not None and top[0] and not top[1]:
                    top[1] = True  # [a: b] holds a mapping {a: b}, around the key already read
                    depth += 1
                    top[2] = max(top[2] + 1, depth)
                    top[3] = max(top[3], top[2])
                    level(top[2], p)
                p += 1
            elif c == "#":
                eol = s.find("\n", p)
                p = n if eol < 0 else eol + 1
            elif c in "'\"":
                p = (_SINGLE if c == "'" else _DOUBLE).match(s, p).end()  # type: ignore[union-attr]
            elif c == "!":
                p = _TAG_END.search(s, p + 1).start()  # type: ignore[union-attr]
            elif c in "&*":
                if c == "*":
                    self.alias(p)
                p = _ANCHOR.match(s, p + 1).end()  # type: ignore[union-attr]
            else:  # a plain scalar: quotes inside it are text
                m = _PLAIN_FLOW_END.search(s, p + 1)
                if m is None:
                    return n
                p = m.start() + (1 if m.group()[0] in " \t\n" else 0)
        return n


# ---- JSON ----------------------------------------------------------------------------------------------------
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[{}\[\],]|-?[0-9][0-9A-Za-z.+-]*|-?[A-Za-z_]+', re.S)
_SHORT_DECIMAL = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,80})?")  # always within ±2**53: no conversion needed


class _Container:
    __slots__ = ("expect_key", "index", "is_object", "key", "keys")

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        self.keys: dict[str, int] = {}
        self.key: str | None = None
        self.index = 0
        self.expect_key = is_object


def scan_json(text: str, source: str, max_depth: int, max_entries: int) -> Scan:
    """Refuse JSON nested too deeply, with too many entries in one container, a duplicate key, or a number
    out of bounds (on its text), naming the line and JSON path; one pass, no recursion."""
    stack: list[_Container] = []
    top: _Container | None = None
    deepest = 0
    short = _SHORT_DECIMAL.fullmatch

    def where(at: int) -> str:
        return f"{source}:{text.count(chr(10), 0, at) + 1}"

    def path(container: bool = False) -> str:
        """The JSON path of the current value (``container``: of the innermost container itself)."""
        out = "$"
        for c in stack[:-1] if container else stack:
            if c.is_object and c.key is not None:
                out += f".{c.key}"
            elif not c.is_object:
                out += f"[{c.index}]"
        return clip(repr(out)[1:-1])  # escaped: a key cannot forge a line of the message

    for m in _JSON_TOKEN.finditer(text):
        t = m.group()
        c = t[0]
        if c == '"':
            if top is not None and top.expect_key:
                key = t[1:-1]
                if "\\" in key:
                    with contextlib.suppress(ValueError):  # json.loads of the whole text reports it
                        key = json.loads(t)
                if key in top.keys:
                    first = text.count("\n", 0, top.keys[key]) + 1
                    raise BadInput(f"duplicate key {shown(key)} in {path(container=True)} (first on line {first})",
                                   where=where(m.start()))
                top.keys[key] = m.start()
                top.key = key
                top.expect_key = False
        elif c == ",":
            if top is not None:
                top.index += 1
                if top.is_object:
                    top.expect_key = True
                if top.index >= max_entries:
                    raise BadInput(f"more than {max_entries} entries in {path(container=True)}", where=where(m.start()))
        elif c in "{[":
            top = _Container(c == "{")
            stack.append(top)
            if len(stack) > deepest:
                deepest = len(stack)
                if deepest > max_depth:
                    raise BadInput(f"nesting deeper than {max_depth} levels (refused before parsing)",
                                   where=where(m.start()))
        elif c in "}]":
            if stack:
                stack.pop()
            top = stack[-1] if stack else None
        elif c.isdigit() or (c == "-" and len(t) > 1 and t[1].isdigit()):
            if not short(t):
                why = numbers.refusal(t)
                if why is not None:
                    raise BadInput(why, where=f"{where(m.start())} at {path()}")
        elif t.lstrip("-") in ("NaN", "Infinity"):
            raise BadInput(f"{t} is not allowed: NaN and infinity are not numbers a protocol can use",
                           where=f"{where(m.start())} at {path()}")
    return Scan(deepest)
