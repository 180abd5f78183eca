"""Reading a YAML file a person wrote, with limits: every mistake becomes a `YamlFileError`
that says where, never a traceback, a hang or a blown stack.

PyYAML's safe loader, plus what it lacks for untrusted files: a size cap, a nesting cap, a cap
on how far aliases expand (the "billion laughs" file is a few hundred bytes), no alias that
contains itself, no duplicate keys, and scalars it cannot convert (2025-02-30, an integer of
5,000 digits) reported at their line. This module knows YAML, not what a scenario means.
"""

from __future__ import annotations

import codecs
import reprlib
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Far above any real scenario (the bundled ones are 1-2 KB, nest 6 levels and expand to a few
# hundred nodes), low enough that a wrong file (/dev/zero, an alias bomb, ten thousand nested
# brackets) fails within milliseconds and a few megabytes.
MAX_FILE_BYTES = 10_000_000
MAX_DEPTH = 64
MAX_NODES = 1_000_000  # nodes once every alias is expanded, as a validator walks them
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlFileError(Exception):
    """A file that cannot be read as YAML: `where` is "line L, column C" (or ""), `problem`
    one line saying what is wrong."""

    def __init__(self, problem: str, where: str = "") -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.problem = problem
        self.where = where


class _Refused(ComposerError):
    """A limit of this module (not a YAML syntax error) refused the file."""


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


class _LimitedLoader(yaml.SafeLoader):
    """yaml.SafeLoader with the limits of this module; every problem a yaml.MarkedYAMLError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # The composer recurses once per level: bounding the depth bounds the stack.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            # A scalar that matches a YAML type but does not convert: 2025-02-30, or an
            # integer longer than Python converts (its message advises a sys setting: cut).
            kind = str(node.tag).rsplit(":", 1)[-1]
            reason = str(exc).split(";")[0]
            raise ConstructorError(
                None, None, f"cannot read {_short(node.value)} as {kind}: {reason}", node.start_mark
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        # YAML requires unique keys; PyYAML keeps the last one silently, so a second `sites:`
        # would drop the first without a word. Keys merged in with `<<` may be overridden.
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue
                if first is not key_node:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {_short(key)} (first at {_at(first.start_mark)})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: Node | None) -> None:
    """Refuse an alias that contains itself, and a document whose aliases expand past
    MAX_NODES. One depth-first pass over the node graph (aliases share nodes), no recursion."""
    if root is None:
        return
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path from the root
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_NODES:
                raise _Refused(
                    None,
                    None,
                    f"aliases expand this to more than {MAX_NODES:,} values",
                    node.start_mark,
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _Refused(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _line_col(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def parse_yaml(text: str) -> Any:
    """The one document in `text`, within the limits of this module; YamlFileError if not."""
    try:
        return yaml.load(text, Loader=_LimitedLoader)
    except _Refused as exc:
        raise YamlFileError(str(exc.problem), _at(exc.problem_mark)) from None
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc).splitlines()[0]
        raise YamlFileError(f"invalid YAML: {problem}", _at(exc.problem_mark)) from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (NUL, most control characters).
        where = _line_col(text, exc.position) if isinstance(exc.position, int) else ""
        reason = str(exc).splitlines()[0]
        raise YamlFileError(f"invalid YAML: {reason}", where) from None
    except yaml.YAMLError as exc:
        raise YamlFileError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # belt and braces: the depth cap should prevent it
        raise YamlFileError(f"nested deeper than {MAX_DEPTH} levels") from None


def read_yaml_file(path: Path) -> Any:
    """Read and parse one YAML file (UTF-8, or UTF-16 with a byte-order mark).

    Raises FileNotFoundError for a missing file (callers say which files exist) and
    YamlFileError for anything else: unreadable, too large, not text, not valid YAML."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise YamlFileError(f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL in the path
        raise YamlFileError(f"cannot read: {exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlFileError(f"cannot read: larger than {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlFileError(
            f"cannot read: not UTF-8 text (byte 0x{raw[exc.start]:02x})", f"line {line}"
        ) from None
    return parse_yaml(text)


class _BoundedRepr(reprlib.Repr):
    """reprlib's bounded repr, safe on integers too long for str() (Python refuses to convert
    more than 4,300 digits) and on containers that contain themselves."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = limit
        self.maxother = limit
        self.maxlong = limit
        self.maxlevel = 3

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 1000:
            return f"<an integer of about {int(x.bit_length() * 0.30103)} digits>"
        return super().repr_int(x, level)


_REPR = _BoundedRepr(57)


def _short(value: Any) -> str:
    return one_line(_REPR.repr(value))


def shown(value: Any, limit: int = 60) -> str:
    """repr() of a user's value for an error line: bounded in time and length, one line."""
    return one_line(_REPR.repr(value), limit)


def one_line(text: str, limit: int = 500) -> str:
    """`text` safe to print as one line of a terminal: control characters, newlines and lone
    surrogates (undecodable file names) escaped, at most `limit` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
