"""Read a buyer's answer to a ping or post by its contract's response rule (pure, no database).

A rule names where the outcome, price, reason, buyer's reference and any named captures are in
the answer. Every path is read by the rule's answer format:

- json: a dotted path (`result.bids.0.amount`) or a JSONPath beginning with `$`
  (`$.bids[?(@.status == 'won')].id`, RFC 9535: https://www.rfc-editor.org/rfc/rfc9535, as far
  as jsonpath-ng's extended parser goes);
- xml: an XPath as far as ElementTree goes
  (https://docs.python.org/3/library/xml.etree.elementtree.html#xpath-support), read from the
  document node (`Response/Status`, `/Response/Status`, `.//p:Price`), optionally ending in
  `/@name` for an attribute or `/text()`. A name without a prefix matches the element in any
  namespace, unless the rule declares a default namespace (a line `=uri`); `p:Price` uses the
  rule's prefixes, `{*}Price` and `{uri}Price` work as in ElementTree. The document is parsed by
  defusedxml, which refuses entity declarations (billion laughs) and external references;
- any format: `re:<regex>` searches the raw body and reads group 1, or the whole match (a text
  answer is read by these only).

`a|b` reads the first of several paths that finds something. A path that does not compile, or a
document that does not parse, finds nothing: a buyer's answer is never an error. A decline or
reject keeps the buyer's own words: the reason path, else the usual places (keys or elements
named reason, message, error(s), detail, description, ...), else a short plain-text body, else
the word at the success path; "HTTP <code>" or "not accepted" only when the answer said nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property, lru_cache
from itertools import islice
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_xml
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as jsonpath_parse

MISSING: Any = object()

ANSWER_FORMATS = ("json", "xml", "text")
Namespaces = tuple[tuple[str, str], ...]
# A compiled path: (the parsed document of the rule's format or MISSING, the raw body) -> value.
Reader = Callable[[Any, str], Any]

REASON_MAX = 500
CAPTURE_MAX = 255
PLAIN_BODY_MAX = 200
# Where buyers put a decline's words, most telling first; keys and element names are compared in
# lower case without "_" and "-" (statusMessage, status_message, Status-Message).
REASON_NAMES = (
    "reason",
    "reasons",
    "message",
    "messages",
    "errormessage",
    "error",
    "errors",
    "msg",
    "detail",
    "details",
    "description",
    "errordescription",
    "statusmessage",
    "title",
)
_REASON_RANK = {name: rank for rank, name in enumerate(REASON_NAMES)}
_WORDS_DEPTH = 4
_XML_LEAVES_MAX = 50
_XML_PLACES_MAX = 20
_MARKUP_RE = re.compile(r"<[A-Za-z!/?][^>]*>")
# An XPath's tokens: a quoted literal, a Clark-notation name ({uri}local, {*}local), a name
# (with an optional prefix), or any other single character.
_XPATH_TOKEN_RE = re.compile(
    r"""('[^']*'|"[^"]*")|(\{[^}]*\}[^\s/\[\]()@=!|]*)|([^\W\d][\w.\-]*(?::[^\W\d][\w.\-]*)?)|(.)""",
    re.DOTALL,
)
_XPATH_ATTRIBUTE_RE = re.compile(r"(?:(.*)/)?@([^\s/\[\]@=()]+)", re.DOTALL)
_PREFIX_RE = re.compile(r"(?:[^\W\d][\w.\-]*)?\Z")


@dataclass(frozen=True)
class ParseRule:
    """The parts of a ResponseRule the parser needs; defaults read the buyer simulator."""

    success_path: str = "status"
    success_values: tuple[str, ...] = ("accepted", "bid", "success", "ok")
    success_regex: str = ""
    success_status_codes: tuple[int, ...] = ()
    price_path: str = "price"
    price_regex: str = ""
    reason_path: str = "reason"
    reference_path: str = "lead_id|bid_id"
    answer_format: str = "json"
    namespaces: Namespaces = ()  # (prefix, uri); the prefix "" is the default namespace
    captures: tuple[tuple[str, str], ...] = ()  # (name, path)

    @cached_property
    def _compiled(self) -> _CompiledRule:
        # Not a field: kept in the instance's __dict__, so a rule compiles its paths once.
        return _CompiledRule(self)


DEFAULT_RULE = ParseRule()


@dataclass(frozen=True)
class ParsedResponse:
    accepted: bool
    price: Decimal | None = None
    reason: str = ""
    reference: str = ""
    captures: dict[str, str] = field(default_factory=dict, hash=False)


def accept_header(answer_format: str) -> str:
    """Return the Accept header for a request whose answer is read in `answer_format`.

    The format the rule reads comes first; `*/*` at a low weight keeps a strict server from
    refusing the request (406) when it can only answer otherwise, e.g. with a plain-text error,
    which still carries the buyer's reason. XML is asked for by both of its media types, the
    older text/xml a little lower (RFC 7303). Weights: RFC 9110, 12.5.1
    (https://www.rfc-editor.org/rfc/rfc9110#section-12.5.1).
    """
    if answer_format == "json":
        return "application/json, */*;q=0.1"
    if answer_format == "xml":
        return "application/xml, text/xml;q=0.9, */*;q=0.1"
    if answer_format == "text":
        return "text/plain, */*;q=0.1"
    return "*/*"


def json_path(document: Any, path: str) -> Any:
    """Return the value at a dotted path (`result.bids.0.amount`); a|b takes the first present."""
    return _dotted(document, _dotted_alternatives(path))


def _dotted_alternatives(path: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(alternative.strip().split(".")) for alternative in path.split("|"))


def _dotted(document: Any, alternatives: tuple[tuple[str, ...], ...]) -> Any:
    for parts in alternatives:
        value = document
        for part in parts:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = MISSING
                break
        if value is not MISSING and value is not None:
            return value
    return MISSING


def check_path(path: str, *, answer_format: str, namespaces: Namespaces = ()) -> None:
    """Raise ValueError, saying why, when `path` cannot be read in `answer_format`."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"Unknown answer format {answer_format!r}.")
    _compile(path, answer_format, namespaces)


def parse_namespaces(text: str, *, strict: bool = False) -> Namespaces:
    """Read a rule's namespaces: one `prefix=uri` per line (`=uri` or `xmlns=uri` is the default
    namespace; `xmlns:p="uri"` as copied from a document works too). A line that says none is
    skipped, or with `strict` raises ValueError naming the line."""
    namespaces: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        name, equals, uri = line.partition("=")
        name, uri = name.strip(), uri.strip().strip("\"'")
        if not (name or equals or uri):
            continue
        prefix = "" if name == "xmlns" else name.removeprefix("xmlns:")
        if not equals or not uri or any(c.isspace() for c in uri) or not _PREFIX_RE.match(prefix):
            if strict:
                raise ValueError(f"Line {number}: write prefix=uri, not {line.strip()!r}.")
            continue
        namespaces.append((prefix, uri))
    return tuple(namespaces)


def _nothing(document: Any, body: str) -> Any:
    return MISSING


def _split_alternatives(path: str) -> list[str]:
    """Split `a|b` at the bars that are outside brackets, parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    for index, char in enumerate(path):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth = max(0, depth - 1)
        elif char == "|" and depth == 0:
            parts.append(path[start:index])
            start = index + 1
    parts.append(path[start:])
    return [part.strip() for part in parts if part.strip()]


def _regex_reader(pattern: str) -> Reader:
    compiled = re.compile(pattern)
    group = 1 if compiled.groups else 0

    def read(document: Any, body: str) -> Any:
        match = compiled.search(body)
        if match is None or match.group(group) is None:
            return MISSING
        return match.group(group)

    return read


def _jsonpath_reader(path: str) -> Reader:
    expression = jsonpath_parse(path)

    def read(document: Any, body: str) -> Any:
        if document is MISSING:
            return MISSING
        try:
            matches = expression.find(document)
        except Exception:  # staff's expression over a buyer's data: an error finds nothing
            return MISSING
        for match in matches:
            if match.value is not None:
                return match.value
        return MISSING

    return read


def _xml_expand(path: str, prefixes: Mapping[str, str]) -> str:
    """Write an XPath's prefixed and unprefixed element names in Clark notation ({uri}local)."""
    default = prefixes.get("", "*")
    out: list[str] = []
    previous = ""
    for match in _XPATH_TOKEN_RE.finditer(path):
        token = match.group()
        name = match.group(3)
        if name is None or path[match.end() :].lstrip().startswith("("):
            out.append(token)  # not a name, or a function: last()
        elif ":" in name:
            prefix, local = name.split(":", 1)
            if prefix not in prefixes or not prefixes[prefix]:
                raise ValueError(f"The prefix {prefix!r} is not among the rule's namespaces.")
            out.append(f"{{{prefixes[prefix]}}}{local}")
        elif previous == "@":
            out.append(token)  # an attribute without a prefix is in no namespace
        else:
            out.append(f"{{{default}}}{name}")
        if not token.isspace():
            previous = token
    return "".join(out)


def _attribute_key(name: str, prefixes: Mapping[str, str]) -> str:
    if ":" in name and not name.startswith("{"):
        prefix, local = name.split(":", 1)
        if not prefixes.get(prefix):
            raise ValueError(f"The prefix {prefix!r} is not among the rule's namespaces.")
        return f"{{{prefixes[prefix]}}}{local}"
    return name


def _attribute_of(element: Element, key: str) -> str | None:
    if key.startswith("{*}"):
        local = key[3:]
        for name, value in element.attrib.items():
            if name == local or name.endswith("}" + local):
                return value
        return None
    return element.get(key)


def _xpath_reader(path: str, prefixes: Mapping[str, str]) -> Reader:
    attribute = ""
    if path.endswith("/text()"):
        path = path.removesuffix("/text()")
    match = _XPATH_ATTRIBUTE_RE.fullmatch(path)
    if match is not None:
        path, attribute = match.group(1) or ".", _attribute_key(match.group(2), prefixes)
    if path.startswith("/"):
        path = "." + path  # from the document node, which the parsed answer is
    elements_path = _xml_expand(path, prefixes)
    list(Element("document").iterfind(elements_path))  # ElementTree compiles (and checks) it

    def read(document: Any, body: str) -> Any:
        if document is MISSING:
            return MISSING
        for element in document.iterfind(elements_path):
            if attribute:
                value = _attribute_of(element, attribute)
                if value is not None and value.strip():
                    return value.strip()
            else:
                text = "".join(element.itertext()).strip()
                if text:
                    return text
        return MISSING

    return read


def _compile(path: str, answer_format: str, namespaces: Namespaces) -> Reader:
    """Compile a path; raise ValueError, saying why, when it cannot be read."""
    if path.startswith("re:"):
        try:
            return _regex_reader(path[3:])
        except re.error as exc:
            raise ValueError(f"Not a valid regular expression: {exc}.") from None
    if answer_format == "text":
        raise ValueError("A text answer is read by a regular expression: re:<regex>.")
    alternatives = _split_alternatives(path)
    if not alternatives:
        raise ValueError("The path is empty.")
    if answer_format == "json" and not any(a.startswith("$") for a in alternatives):
        return _dotted_reader(path)  # today's paths: the common case, kept lean
    try:
        readers = [_alternative_reader(a, answer_format, namespaces) for a in alternatives]
    except JSONPathError as exc:
        raise ValueError(f"Not a valid JSONPath: {exc}.") from None
    except (SyntaxError, TypeError, KeyError) as exc:
        # ElementTree raises any of these for a path it cannot compile.
        raise ValueError(f"Not a valid XPath for ElementTree: {exc}.") from None
    if len(readers) == 1:
        return readers[0]

    def first(document: Any, body: str) -> Any:
        for read in readers:
            value = read(document, body)
            if value is not MISSING:
                return value
        return MISSING

    return first


def _alternative_reader(path: str, answer_format: str, namespaces: Namespaces) -> Reader:
    if answer_format == "xml":
        return _xpath_reader(path, dict(namespaces))
    return _jsonpath_reader(path) if path.startswith("$") else _dotted_reader(path)


def _dotted_reader(path: str) -> Reader:
    alternatives = _dotted_alternatives(path)
    return lambda document, body: _dotted(document, alternatives)


@lru_cache(maxsize=4096)
def _reader(path: str, answer_format: str, namespaces: Namespaces) -> Reader:
    """The compiled path (shared by every rule that names it); one that does not compile finds
    nothing (the rule's form says why when it is saved)."""
    try:
        return _compile(path, answer_format, namespaces)
    except ValueError:
        return _nothing


def _search(pattern: str) -> Callable[[str], re.Match[str] | None]:
    try:
        return re.compile(pattern).search
    except re.error:
        return lambda body: None


class _CompiledRule:
    """A rule's paths and regexes, compiled."""

    def __init__(self, rule: ParseRule) -> None:
        answer_format = rule.answer_format if rule.answer_format in ANSWER_FORMATS else "json"
        self.answer_format = answer_format

        def reader(path: str) -> Reader | None:
            return _reader(path, answer_format, rule.namespaces) if path else None

        self.success = reader(rule.success_path)
        # XML and regexes read text: there the word "true" is the boolean true of JSON.
        self.success_textual = answer_format == "xml" or rule.success_path.startswith("re:")
        self.wanted = frozenset(value.lower() for value in rule.success_values)
        self.success_regex = _search(rule.success_regex) if rule.success_regex else None
        self.price_regex = _search(rule.price_regex) if rule.price_regex else None
        self.price = reader(rule.price_path)
        self.reason = reader(rule.reason_path)
        self.reference = reader(rule.reference_path)
        self.captures = tuple(
            (name, _reader(path, answer_format, rule.namespaces))
            for name, path in rule.captures
            if name and path
        )
        paths = [rule.success_path, rule.price_path, rule.reason_path, rule.reference_path]
        paths += [path for _, path in rule.captures]
        # Only regexes (or nothing) to read: the body need not be parsed.
        self.needs_document = answer_format != "text" and any(
            path and not path.startswith("re:") for path in paths
        )


def _parse_json(body: str) -> Any:
    if not body:
        return MISSING
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return MISSING


def _parse_xml(body: str) -> Any:
    """The answer's document node (holding the root element), or MISSING when it is not XML."""
    if not body:
        return MISSING
    try:
        root = safe_xml.fromstring(body)
    except (ParseError, ValueError, LookupError, RecursionError):
        # ParseError: not well-formed; ValueError: defusedxml refused entities or external
        # references, or an encoding expat cannot read.
        return MISSING
    document = Element("document")
    document.append(root)
    return document


def _parse(answer_format: str, body: str) -> Any:
    if answer_format == "xml":
        return _parse_xml(body)
    return _parse_json(body)


def _as_price(value: Any) -> Decimal | None:
    if value is MISSING or isinstance(value, bool | dict | list):
        return None
    try:
        price = Decimal(str(value).strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0:
        return None
    return price.quantize(Decimal("0.01"))


def _compact_json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return ""


def _as_text(value: Any) -> str:
    if value is MISSING:
        return ""
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, sort_keys=True)[:REASON_MAX]
        except RecursionError:
            return ""
    return str(value)[:REASON_MAX]


def _capture_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _compact_json(value)[:CAPTURE_MAX]
    return str(value)[:CAPTURE_MAX]


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _name_key(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower().replace("_", "").replace("-", "")


def _join(words: Iterable[str]) -> str:
    return "; ".join(dict.fromkeys(word for word in words if word))


def _json_words(value: Any, depth: int = 0) -> str:
    """The text a JSON value says: strings, lists of them, an object's reason or its fields."""
    if isinstance(value, str):
        return _collapse(value)
    if depth >= _WORDS_DEPTH:
        return ""
    if isinstance(value, list):
        return _join(_json_words(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return _json_reason_in(value, depth) or _join(
            f"{key}: {words}" if isinstance(key, str) and not key.isdigit() else words
            for key, item in value.items()
            if (words := _json_words(item, depth + 1))
        )
    return ""  # numbers, booleans and null are flags and codes, not words


def _json_reason_in(document: dict[Any, Any], depth: int = 0) -> str:
    found = sorted(
        (_REASON_RANK[key], name)
        for name in document
        if isinstance(name, str) and (key := _name_key(name)) in _REASON_RANK
    )
    for _, name in found:
        words = _json_words(document[name], depth + 1)
        if words:
            return words
    return ""


def _json_reason(document: Any) -> str:
    if isinstance(document, str | list):
        return _json_words(document)
    if not isinstance(document, dict):
        return ""
    words = _json_reason_in(document)
    for value in document.values():  # one level down: {"result": {"message": ...}}
        if words:
            break
        if isinstance(value, dict):
            words = _json_reason_in(value)
    return words


def _xml_text_words(text: str | None) -> str:
    words = _collapse(text or "")
    return "" if words.lower() in ("true", "false") else words  # <Error>false</Error>: a flag


def _is_reason_name(name: Any) -> bool:
    return isinstance(name, str) and _name_key(name) in _REASON_RANK


def _xml_words(element: Element) -> str:
    """An element's words: its text, or its leaves' (only those named like a reason, if any:
    <Error><Code>12</Code><Description>Bad ZIP</Description></Error> says "Bad ZIP")."""
    if len(element) == 0:
        return _xml_text_words(element.text)
    leaves = [leaf for leaf in islice(element.iter(), _XML_LEAVES_MAX) if len(leaf) == 0]
    named = [leaf for leaf in leaves if _is_reason_name(leaf.tag)]
    return _join(_xml_text_words(leaf.text) for leaf in named or leaves)


def _xml_reason(document: Element) -> str:
    """The words of the elements (or attributes) named like a reason, most telling name first."""
    found: dict[int, list[Element | str]] = {}
    for element in document.iter():
        if _is_reason_name(element.tag):
            found.setdefault(_REASON_RANK[_name_key(element.tag)], []).append(element)
        for name, value in element.attrib.items():
            if _is_reason_name(name):
                found.setdefault(_REASON_RANK[_name_key(name)], []).append(value)
    for rank in sorted(found):
        places = found[rank][:_XML_PLACES_MAX]  # bounded work, however the answer nests
        words = _join(
            _xml_text_words(place) if isinstance(place, str) else _xml_words(place)
            for place in places
        )
        if words:
            return words
    return ""


def _usual_reason(answer_format: str, document: Any, body: str) -> str:
    """The buyer's words in the usual places of the answer's document."""
    if document is not MISSING:
        return _json_reason(document) if answer_format == "json" else _xml_reason(document)
    # Not in the format the rule reads (an error page of another kind): look by its first sign.
    start = body.lstrip()[:1]
    if start and start in "{[" and answer_format != "json":
        other = _parse_json(body)
        return _json_reason(other) if other is not MISSING else ""
    if start == "<" and answer_format != "xml":
        other = _parse_xml(body)
        return _xml_reason(other) if other is not MISSING else ""
    return ""


def _plain_words(answer_format: str, document: Any, body: str) -> str:
    """The body itself, when it is a short plain text (not markup, not a JSON document)."""
    if answer_format == "json" and document is not MISSING:
        return ""
    text = _collapse(body[: PLAIN_BODY_MAX * 8])
    if not text or len(text) > PLAIN_BODY_MAX or text[0] in "<{[" or not text.isprintable():
        return ""
    return "" if _MARKUP_RE.search(text) else text


def _decline_reason(
    compiled: _CompiledRule, document: Any, body: str, status_code: int, success_value: Any
) -> str:
    """The buyer's words for a decline or reject, wherever they are; ours only when it said none."""
    answer_format = compiled.answer_format
    if answer_format != "text" and not compiled.needs_document:
        document = _parse(answer_format, body)  # a rule of status codes or regexes only
    words = _usual_reason(answer_format, document, body) or _plain_words(
        answer_format, document, body
    )
    ok = 200 <= status_code < 300
    if not words and ok and isinstance(success_value, str):
        words = _collapse(success_value)  # {"status": "DUPLICATE"}: the buyer's one word
    if words:
        return words[:REASON_MAX]
    if not ok:
        return f"HTTP {status_code}"
    if document is MISSING and answer_format != "text" and body.strip():
        # Ops' first question then: why did the rule find nothing?
        expected = "JSON" if answer_format == "json" else "well-formed XML without entities"
        return f"not accepted (the answer is not {expected})"
    return "not accepted"


def _reason_text(value: Any) -> str:
    if value is MISSING:
        return ""
    if isinstance(value, dict | list):
        return (_json_words(value) or _compact_json(value))[:REASON_MAX]
    return _collapse(str(value))[:REASON_MAX]


def parse_response(rule: ParseRule, status_code: int, body: str) -> ParsedResponse:
    """Decide whether the buyer accepted (or bid), and read price, reason, reference and the
    rule's captures; never raise, whatever the answer."""
    compiled = rule._compiled
    document = _parse(compiled.answer_format, body) if compiled.needs_document else MISSING
    ok = 200 <= status_code < 300

    value: Any = MISSING
    if rule.success_status_codes:
        accepted = status_code in rule.success_status_codes
    elif compiled.success_regex is not None:
        accepted = ok and compiled.success_regex(body) is not None
    else:
        if compiled.success is not None:
            value = compiled.success(document, body)
        accepted = (
            ok
            and value is not MISSING
            and (
                value is True
                if isinstance(value, bool)
                else (text := str(value).lower()) in compiled.wanted
                or (compiled.success_textual and text == "true")
            )
        )

    price: Decimal | None = None
    if compiled.price_regex is not None:
        match = compiled.price_regex(body)
        price = _as_price(match.group(1)) if match and match.re.groups else None
    elif compiled.price is not None:
        price = _as_price(compiled.price(document, body))

    reason = _reason_text(compiled.reason(document, body)) if compiled.reason else ""
    reference = _as_text(compiled.reference(document, body)) if compiled.reference else ""
    captures: dict[str, str] = {}
    for name, read in compiled.captures:
        captured = read(document, body)
        if captured is not MISSING:
            captures[name] = _capture_text(captured)
    if not accepted and not reason:
        reason = _decline_reason(compiled, document, body, status_code, value)
    return ParsedResponse(
        accepted=accepted, price=price, reason=reason, reference=reference, captures=captures
    )


def _capture_items(captures: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(captures, Mapping):
        return ()
    return tuple(
        (str(name), path) for name, path in captures.items() if isinstance(path, str) and path
    )


def rule_from_model(model: Any) -> ParseRule:
    """Build a ParseRule from a buyers.ResponseRule row (or the defaults for None)."""
    if model is None:
        return DEFAULT_RULE
    return ParseRule(
        success_path=model.success_path,
        success_values=tuple(v.strip() for v in model.success_values.split(",") if v.strip()),
        success_regex=model.success_regex,
        success_status_codes=tuple(
            int(c) for c in re.split(r"[\s,;]+", model.success_status_codes) if c
        ),
        price_path=model.price_path,
        price_regex=model.price_regex,
        reason_path=model.reason_path,
        reference_path=model.reference_path,
        answer_format=getattr(model, "answer_format", "json") or "json",
        namespaces=parse_namespaces(getattr(model, "namespaces", "") or ""),
        captures=_capture_items(getattr(model, "captures", None)),
    )
