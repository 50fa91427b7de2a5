"""The configuration file itself: reading and writing it, its secret placeholders, paths into
it, and the diff an import prints. Plain data in, plain data out; no database.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

FORMATS = ("yaml", "json")
Format = Literal["yaml", "json"]
# The document's first key: what it is and which shape of it.
FORMAT_KEY = "leadswitch"
FORMAT_VERSION = 1

SECRET_PREFIX = "LEADSWITCH_SECRET_"  # noqa: S105 (a variable name's prefix)
PLACEHOLDER_RE = re.compile(r"^\$\{(LEADSWITCH_SECRET_[A-Z0-9_]+)\}$")


class DocumentError(ValueError):
    """The text is not a configuration document (not YAML or JSON, or not of this shape)."""


@dataclass(frozen=True)
class Problem:
    """Why one part of the file cannot be imported, and where: contracts[3].caps[0].period."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


Action = Literal["created", "changed", "unchanged", "absent", "deleted"]


@dataclass
class Change:
    """What an import does (or would do) to one object."""

    action: Action
    path: str
    label: str
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (name, old, new)
    personal: bool = False  # the label is personal data (a team member's name)


def secret_variable(*parts: object) -> str:
    """Name the environment variable that carries one secret: LEADSWITCH_SECRET_ACME_MAIN_KEY."""
    words = "_".join(str(p) for p in parts if p not in (None, ""))
    return SECRET_PREFIX + re.sub(r"[^A-Z0-9]+", "_", words.upper()).strip("_")


def placeholder(variable: str) -> str:
    return "${" + variable + "}"


def placeholder_variable(value: object) -> str | None:
    """Return the variable a placeholder names, or None when the value is not one."""
    match = PLACEHOLDER_RE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def path_join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def sorted_json(value: Any) -> Any:
    """A JSON value with every object's keys sorted: the same text whichever database stored it
    (PostgreSQL's jsonb reorders keys, SQLite keeps them as written)."""
    if isinstance(value, dict):
        return {str(k): sorted_json(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [sorted_json(v) for v in value]
    return value


def sort_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Order rows by their key values, None first, numbers as numbers, anything else as text."""
    return tuple(
        (0, 0, "")
        if v is None
        else (1, v, "")
        if isinstance(v, int | float) and not isinstance(v, bool)
        else (2, 0, json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else str(v))
        for v in values
    )


class _Dumper(yaml.SafeDumper):
    """Safe YAML whose long texts (templates, acknowledgements) stay readable blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and value == value.strip(" ") and "\t" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: dict[str, Any], fmt: Format) -> str:
    """Write the document: keys in the order given, so the same configuration is the same text."""
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    text: str = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return text


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (the parser keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the parser refuses it itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    twice = [key for key, count in Counter(key for key, _ in pairs).items() if count > 1]
    if twice:
        raise ValueError(f"the key {twice[0]!r} is given twice in one object")
    return dict(pairs)


# Text no database column holds: PostgreSQL refuses NUL (even in a lookup), and UTF-8 cannot
# carry a lone surrogate (which JSON's "\ud800" makes).
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """Whether a database can hold (and look up) this text."""
    return _UNSTORABLE_RE.search(text) is None


def _unstorable_place(data: Any) -> str | None:
    """The place of the first text (key or value) no database can hold, or None."""
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not storable(value):
                return path or "the top"
        elif isinstance(value, dict | list) and id(value) not in seen:
            seen.add(id(value))  # a YAML alias is read once
            items = list(value.items() if isinstance(value, dict) else enumerate(value))
            for key, item in reversed(items):
                where = path_join(path, key if isinstance(value, list) else str(key))
                if isinstance(key, str) and not storable(key):
                    return where
                stack.append((where, item))
    return None


# What a document may expand to, counted in YAML nodes with every alias read where it is used:
# far above any marketplace (the demo is about 4,000), far below what nested aliases ("a billion
# laughs") would make the import walk.
MAX_EXPANDED_NODES = 1_000_000


def _expanded_nodes(root: yaml.Node) -> int:
    """How many nodes the document holds once each alias is replaced by what it names."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children: list[yaml.Node] = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if children_done:
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 0) for child in children)
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_nodes(root) > MAX_EXPANDED_NODES:
            raise DocumentError(f"its aliases expand it past {MAX_EXPANDED_NODES:,} values.")
        return loader.construct_document(root)
    finally:
        loader.dispose()


def parse(text: str, fmt: Format) -> Any:
    """Read YAML or JSON as the file's rules read it (a key given twice is an error, and so is
    a text no database can hold); raise DocumentError when it is not valid."""
    try:
        data = json.loads(text, object_pairs_hook=_json_object) if fmt == "json" else _yaml(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DocumentError(f"Not valid {fmt.upper()}: {exc}") from None
    place = _unstorable_place(data)
    if place is not None:
        raise DocumentError(
            f"Not valid {fmt.upper()}: {place} holds a character no database can store "
            "(NUL, or a lone surrogate)."
        )
    return data


def load(text: str, fmt: Format) -> dict[str, Any]:
    """Read a document; raise DocumentError when it is not one (a key given twice included)."""
    return as_document(parse(text, fmt))


def as_document(data: Any) -> dict[str, Any]:
    """Return the data read from a file if it is a configuration document; raise DocumentError
    when it is not."""
    if not isinstance(data, dict):
        raise DocumentError("The file must hold a mapping of sections (verticals, sources, ...).")
    version = data.get(FORMAT_KEY)
    if version != FORMAT_VERSION:
        raise DocumentError(
            f"Not a Leadswitch configuration: its first key must be `{FORMAT_KEY}: "
            f"{FORMAT_VERSION}` (found {version!r})."
        )
    return data


def format_of(filename: str) -> Format:
    """A file ending .json is JSON; anything else is read as YAML."""
    return "json" if filename.lower().endswith(".json") else "yaml"


_SIGNS = {"created": "+", "changed": "~", "deleted": "-", "absent": "=", "unchanged": "="}
_WORDS = {
    "created": "created",
    "changed": "changed",
    "deleted": "deleted",
    "absent": "left alone (not in the file)",
    "unchanged": "left alone (unchanged)",
}


def render_diff(changes: list[Change], *, applied: bool) -> str:
    """Say what the import does: one line per object created, changed, deleted or left alone,
    the changed fields below their object, and the counts."""
    lines = []
    for change in changes:
        where = f"{change.path} " if change.path else ""
        lines.append(f"{_SIGNS[change.action]} {where}{change.label}: {_WORDS[change.action]}")
        lines.extend(f"    {name}: {old} -> {new}" for name, old, new in change.fields)
    counts = dict.fromkeys(_WORDS, 0)
    for change in changes:
        counts[change.action] += 1
    verb = "Applied" if applied else "Dry run, nothing changed"
    lines.append(
        f"{verb}: {counts['created']} created, {counts['changed']} changed, "
        f"{counts['deleted']} deleted, {counts['unchanged']} unchanged, "
        f"{counts['absent']} not in the file and left alone."
    )
    return "\n".join(lines) + "\n"
