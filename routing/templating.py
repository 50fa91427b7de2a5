"""Buyers' request templates: a body, query values and headers written in Jinja2 (pure).

Staff write templates; Jinja2's sandbox (https://jinja.palletsprojects.com/en/3.1.x/sandbox/)
keeps them from reaching anything but the lead context, which they cannot change either. What a
template means depends on the endpoint's body format:

- json: a JSON document whose string leaves may hold template code. A leaf that is exactly one
  `{{ expression }}` keeps the expression's type (a number, true/false, null, an object); any
  other leaf is text. We serialise the document, so it is valid JSON whatever the values.
- form: a JSON object {field: value}. A text value is a text template, or an XML document
  template when it starts with `<`; an object or array value is sent as JSON text, its leaves
  templated as in json.
- xml: XML text, values escaped for XML (characters XML 1.0 cannot carry are dropped).

Query values and header values are text templates. `compile_request` compiles all of an
endpoint's templates into one Jinja template (each part a top-level assignment, so a render is
one Jinja call) and `RequestTemplate.render` renders a lead's request. At run time a name the
lead lacks renders as "" (null in an exact JSON leaf); `check_request`, run when a template is
saved, renders strictly (an unknown name is an error) with a sample lead and again with unusual
values, and refuses a template that fails or renders an invalid document, with the line.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from functools import wraps
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from defusedxml import ElementTree as SafeElementTree
from jinja2 import ChainableUndefined, StrictUndefined, Undefined, nodes, pass_eval_context
from jinja2 import TemplateError as JinjaError
from jinja2 import TemplateSyntaxError as JinjaSyntaxError
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from buyers.models import HEADER_NAME_RE, BodyFormat
from routing.formats import (
    MASK,
    BadFormat,
    Unusable,
    as_text,
    digits,
    drop_xml_invalid,
    epoch_seconds,
    first_word,
    in_zone,
    is_missing,
    last_words,
    lookup,
    number,
    phone,
    scrub,
    spellings,
    strftime,
    text,
    title_words,
    to_date,
    to_datetime,
    us_phone,
    whole_number,
    xml_text,
    yes,
    zip5,
)
from routing.formats import header_value_problem as header_problem


class TemplateError(ValueError):
    """A template that does not compile or render, or renders an invalid request.

    `where` names the part ("body", "query zip", "header X-Key") and `line` the line in it, when
    known. The message never repeats a lead value or a secret.
    """

    def __init__(self, message: str, line: int | None = None, where: str = "") -> None:
        super().__init__(message, line, where)
        self.message = message
        self.line = line
        self.where = where

    def __str__(self) -> str:
        place = ", ".join(
            part for part in (self.where, f"line {self.line}" if self.line else "") if part
        )
        return f"{place}: {self.message}" if place else self.message


class Masked(str):
    """A secret (or, in a URL, a PII value) replaced by •••• for the stored copy of a request.

    Every filter here hands it back unchanged, so `{{ secrets.key | b64 }}` is stored as ••••
    rather than as the encoding of a mask.
    """

    __slots__ = ()


MASKED = Masked(MASK)


# --- Filters ----------------------------------------------------------------------------------


def _filter(
    name: str, function: Callable[..., Any], *, takes_missing: bool = False
) -> Callable[..., Any]:
    """Return `function` as the template filter `name`.

    A masked value passes through unchanged. An undefined value is missing (a strict check
    raises instead). Unless the filter `takes_missing`, a missing value (None or blank text)
    gives None, which renders as "" (null in an exact JSON leaf): a lead without the optional
    field sends nothing rather than failing. A value the filter cannot take raises a
    TemplateError naming the filter, never the value.
    """

    @wraps(function)
    def run(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, Masked):
            return value
        if isinstance(value, Undefined):
            str(value)  # a StrictUndefined raises here, naming what is undefined
            value = None
        if not takes_missing and is_missing(value):
            return None
        try:
            return function(value, *args, **kwargs)
        except Unusable as exc:
            raise TemplateError(f"Filter {name}: the value {exc.args[0]}.") from None
        except BadFormat as exc:
            raise TemplateError(f"Filter {name}: {exc.args[0]}") from None

    return run


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises here, naming what is undefined
        return None
    if isinstance(value, Decimal):
        # JSON has one kind of number; a Decimal of up to 15 digits comes through exactly.
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# Made once: json.dumps with options builds a new encoder for every call.
_JSON = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)


def _json_text(value: Any) -> str:
    """Return compact JSON text for a value, with Decimals as numbers (not escaped for HTML)."""
    try:
        written = _JSON.encode(value)
    except ValueError:
        raise Unusable("holds a number JSON cannot carry (NaN or infinity)") from None
    # A lone surrogate can only stand inside a JSON string, where its \udxxx escape is exactly
    # what backslashreplace writes: the text stays valid JSON and becomes encodable.
    if written.isascii():
        return written
    return written.encode("utf-8", "backslashreplace").decode("utf-8")


def _utf8(value: Any) -> bytes:
    return text(value).encode("utf-8", "replace")


def _urlencode(value: Any) -> str:
    if isinstance(value, Mapping):
        pairs = [(as_text(name), as_text(item)) for name, item in value.items()]
        return urlencode(pairs, errors="replace")
    return quote(as_text(value), safe="", errors="replace")


def _lookup(value: Any, table: Any, *default: Any) -> Any:
    if not isinstance(table, Mapping) or len(default) > 1:
        raise BadFormat("Use lookup({value: result, ...}) or lookup({...}, default).")
    return lookup(value, table, *default)


def _datetime(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S", tz: str | None = None) -> str:
    moment = to_datetime(value)
    return strftime(in_zone(moment, tz) if tz else moment, fmt)


# The filters buyers' formats need, beside Jinja's own (upper, lower, trim, default, replace,
# truncate, ...). The value functions are the field mappings' (routing/formats.py).
_FILTER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    # phone(style): e164 +15551234567, 10 5551234567, dashed, dotted, paren (555) 123-4567
    "phone": phone,
    "area_code": lambda value: us_phone(value)[:3],
    "phone_prefix": lambda value: us_phone(value)[3:6],  # the 3-digit exchange
    "phone_line": lambda value: us_phone(value)[6:],  # the 4-digit line number
    "digits": digits,
    "zip5": zip5,
    # date(fmt), datetime(fmt, tz): strftime formats; a time without a zone is UTC
    "date": lambda value, fmt="%Y-%m-%d": strftime(to_date(value), fmt),
    "datetime": _datetime,
    "timestamp": epoch_seconds,
    "title_words": title_words,
    "first_word": first_word,
    "last_words": last_words,
    "int": whole_number,  # the whole part: 12.7 is 12
    "number": number,  # int, or Decimal (a JSON number) with a fraction
    "bool": yes,
    "yn": lambda value: "Y" if yes(value) else "N",
    "onezero": lambda value: 1 if yes(value) else 0,
    "yesno_word": lambda value: "yes" if yes(value) else "no",
    # Escaped once: an XML template does not escape the filter's output again.
    "xml": lambda value: Markup(xml_text(value)),  # noqa: S704 - escaped by xml_text
    "urlencode": _urlencode,  # space as %20; a mapping as name=value&...
    "json": _json_text,
    "md5": lambda value: hashlib.md5(_utf8(value), usedforsecurity=False).hexdigest(),
    "sha1": lambda value: hashlib.sha1(_utf8(value), usedforsecurity=False).hexdigest(),
    "sha256": lambda value: hashlib.sha256(_utf8(value)).hexdigest(),
    "b64": lambda value: base64.b64encode(_utf8(value)).decode("ascii"),
    # lookup({value: result}, default): the value itself when neither matches
    "lookup": _lookup,
}
# Filters that write something for a missing value too ("" or null), or may map it to one.
_TAKES_MISSING = frozenset({"xml", "urlencode", "json", "lookup"})
FILTERS: dict[str, Callable[..., Any]] = {
    name: _filter(name, function, takes_missing=name in _TAKES_MISSING)
    for name, function in _FILTER_FUNCTIONS.items()
}


# --- Environments -----------------------------------------------------------------------------


# The longest text or list `*` may make, and the largest power `**` may raise to: a template
# runs in the worker for every lead (and in the admin when saved), so `"x" * 10**9` is refused.
_MAX_REPEAT = 100_000
_MAX_EXPONENT = 64


class _Environment(ImmutableSandboxedEnvironment):
    """Jinja's sandbox that also keeps templates from changing the lead context's dicts, and
    from making huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"A power above {_MAX_EXPONENT} is refused.")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(times, int)
                    and len(sequence) * times > _MAX_REPEAT
                ):
                    raise SecurityError(f"Repeating past {_MAX_REPEAT} items is refused.")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # The lead context is plain dicts: `fields.items` is the field named "items", not the
        # dict method, and the failed attribute lookup Jinja tries first is skipped.
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: Any) -> Any:
    """Return what `{{ value }}` writes: the value's text, escaped for XML in an XML part."""
    if not eval_ctx.autoescape:
        return as_text(value)
    if isinstance(value, Markup):
        # Already escaped (a {% set %} block, the xml filter, or text marked safe).
        return Markup(drop_xml_invalid(value))  # noqa: S704 - was Markup already
    return Markup(xml_text(value))  # noqa: S704 - escaped by xml_text


def _passing_masked(function: Callable[..., Any]) -> Callable[..., Any]:
    """Return one of Jinja's own filters made to hand a masked value back unchanged."""
    # Filters marked @pass_environment and the like take that first, then the value.
    position = 1 if hasattr(function, "jinja_pass_arg") else 0

    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position and isinstance(args[position], Masked):
            return args[position]
        return function(*args, **kwargs)

    return run


def _environment(undefined: type[Undefined]) -> _Environment:
    env = _Environment(undefined=undefined, finalize=_finalize, autoescape=False)
    env.filters = {name: _passing_masked(function) for name, function in env.filters.items()}
    env.filters.update(FILTERS)
    return env


# Run time: a name the lead lacks renders as "" (null in an exact JSON leaf), even `ping.x.y`.
_LENIENT = _environment(ChainableUndefined)
# Saving: every name must exist in the sample lead.
_STRICT = _environment(StrictUndefined)

_MARKERS = ("{{", "{%", "{#")
# Blocks and inclusion need other templates; a request template is whole in itself.
_FORBIDDEN_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport, nodes.Block)
# JSON strings in a valid JSON document, in the order written (keys and values alike).
_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# The parts of the lead context that hold personal data.
_PERSONAL_SECTIONS = ("fields", "consent")


# --- Compiling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """One templated part of a request, assigned to the template variable `name`.

    The part's text starts on line `line` of `where`; its template code sits on lines from
    `base` of the compiled template, which is how an error is traced back to its line. A part
    inside a JSON string is on one line of the document, whatever line of the string failed.
    """

    name: str
    where: str
    line: int
    base: int
    exact: bool
    in_json: bool

    def value(self, values: Mapping[str, Any]) -> Any:
        """Return the part's rendered value: text, or an exact leaf's value."""
        value = values[self.name]
        if not self.exact:
            return str(value)
        if isinstance(value, Undefined):
            try:
                str(value)  # a StrictUndefined raises here, naming what is undefined
            except JinjaError as exc:
                raise TemplateError(exc.message or "undefined", self.line, self.where) from None
            return None
        return value


class _JsonObject(list[tuple[str, Any]]):
    """A JSON object's (key, value) pairs in the order written (duplicates kept, to refuse)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class _Compiler:
    """Collect an endpoint's templated parts into one Jinja template."""

    def __init__(self, env: _Environment) -> None:
        self.env = env
        self.slots: list[_Slot] = []
        self.statements: list[nodes.Node] = []
        self.next_base = 1

    def text(self, source: str, where: str, line: int = 1, *, xml: bool = False) -> str | _Slot:
        """Return a text part: constant text, or a slot rendering it."""
        return self._part(source, where, line, xml=xml, in_json=False, typed=False)

    def json_leaf(
        self, source: str, where: str, line: int, *, xml: bool = False, typed: bool = True
    ) -> str | _Slot:
        """Return a JSON string leaf: constant text, or a slot (typed when one expression)."""
        return self._part(source, where, line, xml=xml, in_json=True, typed=typed and not xml)

    def json_document(self, source: str, where: str) -> tuple[Any, Iterator[int]]:
        """Return a JSON template as its structure, its templated leaves slots."""
        try:
            document = json.loads(
                source, object_pairs_hook=_JsonObject, parse_constant=_refuse_constant
            )
        except json.JSONDecodeError as exc:
            raise TemplateError(f"This is not valid JSON: {exc.msg}.", exc.lineno, where) from None
        except ValueError as exc:
            raise TemplateError(f"This is not valid JSON: {exc}.", None, where) from None
        newlines = [match.start() for match in re.finditer("\n", source)]
        lines = iter(
            bisect.bisect(newlines, match.start()) + 1 for match in _JSON_STRING_RE.finditer(source)
        )
        return document, lines

    def json_value(self, node: Any, lines: Iterator[int], where: str) -> Any:
        """Return a parsed JSON value with its templated string leaves made slots."""
        if isinstance(node, _JsonObject):
            result: dict[str, Any] = {}
            for key, value in node:
                line = next(lines)
                if key in result:
                    raise TemplateError(f"The key {key!r} appears twice.", line, where)
                result[key] = self.json_value(value, lines, where)
            return result
        if isinstance(node, list):
            return [self.json_value(item, lines, where) for item in node]
        if isinstance(node, str):
            return self.json_leaf(node, where, next(lines))
        return node

    def template(self) -> Template | None:
        """Return the compiled template of every slot, or None when nothing is templated."""
        if not self.slots:
            return None
        tree = nodes.Template(self.statements, lineno=1)
        tree.set_environment(self.env)
        try:
            return self.env.from_string(tree)
        except JinjaSyntaxError as exc:  # an unknown filter, for one
            raise _error_at(self.slots, exc.message or "syntax error", exc.lineno) from None

    def _part(
        self, source: str, where: str, line: int, *, xml: bool, in_json: bool, typed: bool
    ) -> str | _Slot:
        if not any(marker in source for marker in _MARKERS):
            return source
        try:
            tree = self.env.parse(source)
        except JinjaSyntaxError as exc:
            at = line if in_json else line + exc.lineno - 1
            raise TemplateError(exc.message or "syntax error", at, where) from None
        for forbidden in tree.find_all(_FORBIDDEN_NODES):
            at = line if in_json else line + forbidden.lineno - 1
            raise TemplateError(
                "A request template is whole in itself: no extends, include, import or block.",
                at,
                where,
            )
        base = self.next_base
        self.next_base += source.count("\n") + 1
        for node in tree.find_all(nodes.Node):
            if node.lineno is not None:  # the parser leaves some helper nodes without one
                node.lineno += base - 1
        slot = _Slot(f"_{len(self.slots)}", where, line, base, False, in_json)
        target = nodes.Name(slot.name, "store", lineno=base)
        expression = _only_expression(tree) if typed else None
        statement: nodes.Node
        if expression is not None:
            slot = replace(slot, exact=True)
            statement = nodes.Assign(target, expression, lineno=base)
        else:
            statement = nodes.AssignBlock(target, None, tree.body, lineno=base)
        if xml:
            autoescape = nodes.Keyword("autoescape", nodes.Const(True), lineno=base)
            statement = nodes.ScopedEvalContextModifier([autoescape], [statement], lineno=base)
        self.slots.append(slot)
        self.statements.append(statement)
        return slot


def _only_expression(tree: nodes.Template) -> nodes.Expr | None:
    """Return the expression of a template that is exactly one `{{ expression }}`."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    outputs = tree.body[0].nodes
    if len(outputs) != 1 or isinstance(outputs[0], nodes.TemplateData):
        return None
    return outputs[0]


def _error_at(slots: list[_Slot], message: str, lineno: int | None) -> TemplateError:
    """Return a TemplateError placed at the part and line of a compiled template's line."""
    if lineno is None or not slots:
        return TemplateError(message)
    index = max(bisect.bisect([slot.base for slot in slots], lineno) - 1, 0)
    slot = slots[index]
    line = slot.line if slot.in_json else slot.line + lineno - slot.base
    return TemplateError(message, line, slot.where)


def _reads(statements: list[nodes.Node], wanted: str) -> bool:
    """Return whether any of the statements reads the context name `wanted`."""
    return any(
        name.name == wanted and name.ctx == "load"
        for statement in statements
        for name in statement.find_all(nodes.Name)
    )


@dataclass(frozen=True)
class RenderedRequest:
    """A lead's request as the templates render it: the body (None: the field mappings build
    it), query parameters to add to the URL (not yet encoded), and headers."""

    body: bytes | None
    query: list[tuple[str, str]]
    headers: dict[str, str]


@dataclass(frozen=True)
class RequestTemplate:
    """An endpoint's compiled templates, made once per contract version and used per lead.

    `uses_secrets`: some part reads `secrets`, so the stored copy must be rendered masked.
    `uses_pii_in_url`: a query value reads the lead's `fields` or `consent`, which may be PII.
    """

    body_format: str
    uses_secrets: bool
    uses_pii_in_url: bool
    _template: Template | None = field(repr=False)
    _slots: list[_Slot] = field(repr=False)
    _body: Callable[[Mapping[str, Any]], Any] | None = field(repr=False)
    _form_json: frozenset[str] = field(repr=False)
    _form_xml: frozenset[str] = field(repr=False)
    _body_line: int = field(repr=False)
    _query: list[tuple[str, str | _Slot]] = field(repr=False)
    _headers: list[tuple[str, str | _Slot]] = field(repr=False)
    _globals: dict[str, Any] = field(repr=False)

    @property
    def writes_query(self) -> bool:
        """Whether the endpoint's query string has parameters of its own."""
        return bool(self._query)

    def render(self, context: Mapping[str, Any]) -> RenderedRequest:
        """Render the lead's request; raise TemplateError when a part cannot be rendered."""
        return self._finish(self._run(context))

    def render_masked(self, context: Mapping[str, Any], *, pii: frozenset[str]) -> RenderedRequest:
        """Render the copy of the lead's request to store and show: no secret anywhere, and
        no value of the `pii` fields in the query.

        When the masked values make the render fail (`{{ secrets.pin | int + 1 }}`), the real
        render is scrubbed of every spelling of the secrets and PII values instead.
        """
        # The stored headers are not sent: •••• need not be a valid header value.
        try:
            masked = self._finish(
                self._run(masked_context(context, pii=frozenset())), check_headers=False
            )
            if self.uses_pii_in_url and pii and self._query:
                values = self._run(masked_context(context, pii=pii))
                masked = replace(masked, query=self._finish(values, check_headers=False).query)
        except TemplateError:
            return self._scrubbed(self.render(context), context, pii)
        return masked

    def _run(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        """Run the template, returning the value of every slot by its name."""
        template = self._template
        if template is None:
            return {}
        # shared=True skips Jinja's merging of its globals into every context (the slow part
        # of making one): they are merged here, from a plain copy, under the lead's names.
        run = template.new_context({**self._globals, **context}, shared=True)
        try:
            for _ in template.root_render_func(run):
                pass
        except Exception as exc:
            raise self._render_error(exc, template) from exc
        return run.vars

    def _render_error(self, exc: Exception, template: Template) -> TemplateError:
        if isinstance(exc, TemplateError):
            message = exc.message
        elif isinstance(exc, JinjaError):
            message = exc.message or type(exc).__name__
        elif isinstance(exc, TypeError):
            # Says which types met ("'<=' not supported between 'str' and 'int'"), not values.
            message = f"TypeError: {exc}"
        else:
            # Other errors may quote the value they failed on: a lead's, never repeated.
            message = f"{type(exc).__name__} (a value the expression could not use)"
        return _error_at(self._slots, message, _template_line(exc.__traceback__, template))

    def _finish(self, values: Mapping[str, Any], *, check_headers: bool = True) -> RenderedRequest:
        query = [(name, _query_text(_text(part, values))) for name, part in self._query]
        headers = {}
        for name, part in self._headers:
            written = _text(part, values).strip()
            problem = header_problem(written) if check_headers else None
            if problem:
                raise TemplateError(f"The value {problem}.", None, f"header {name}")
            headers[name] = written
        return RenderedRequest(body=self._body_bytes(values), query=query, headers=headers)

    def _body_bytes(self, values: Mapping[str, Any]) -> bytes | None:
        if self._body is None:
            return None
        body = self._body(values)
        if self.body_format == BodyFormat.JSON:
            return _json_body(body).encode("utf-8")
        if self.body_format == BodyFormat.FORM:
            pairs = [
                (name, _json_body(value) if name in self._form_json else value)
                for name, value in body
            ]
            return urlencode(pairs, encoding="utf-8", errors="replace").encode("ascii")
        return str(body).encode("utf-8", "replace")

    def _scrubbed(
        self, rendered: RenderedRequest, context: Mapping[str, Any], pii: frozenset[str]
    ) -> RenderedRequest:
        secrets = _secret_spellings(context)
        personal = secrets + _pii_spellings(context, pii)
        body = rendered.body
        if body is not None:
            body = scrub(body.decode("utf-8", "replace"), secrets).encode("utf-8")
        return RenderedRequest(
            body=body,
            query=[(name, scrub(value, personal)) for name, value in rendered.query],
            headers={name: scrub(value, secrets) for name, value in rendered.headers.items()},
        )


def _text(part: str | _Slot, values: Mapping[str, Any]) -> str:
    return part.value(values) if isinstance(part, _Slot) else part


def _builder(node: Any) -> Callable[[Mapping[str, Any]], Any]:
    """Return the function that makes a body from its slots' values.

    Worked out once per template, so that a render asks no node for its type and takes the
    parts without template code whole.
    """
    if isinstance(node, _Slot):
        return node.value
    if not _templated(node):
        return lambda values: node
    if isinstance(node, dict):
        items = [(key, _builder(item)) for key, item in node.items()]
        return lambda values: {key: build(values) for key, build in items}
    if isinstance(node, tuple):  # a form's (field, value) pairs
        pairs = [(name, _builder(item)) for name, item in node]
        return lambda values: [(name, build(values)) for name, build in pairs]
    builds = [_builder(item) for item in node]
    return lambda values: [build(values) for build in builds]


def _templated(node: Any) -> bool:
    if isinstance(node, _Slot):
        return True
    if isinstance(node, dict):
        return any(_templated(item) for item in node.values())
    return isinstance(node, list | tuple) and any(_templated(item) for item in node)


def _json_body(value: Any) -> str:
    try:
        return _json_text(value)
    except Unusable as exc:
        raise TemplateError(f"The body {exc.args[0]}.", None, "body") from None
    except JinjaError as exc:
        raise TemplateError(exc.message or "undefined", None, "body") from None


def _query_text(value: str) -> str:
    # A lone surrogate cannot be URL-encoded (it is no character in UTF-8).
    return _LONE_SURROGATE_RE.sub("\ufffd", value)


def _template_line(traceback: TracebackType | None, template: Template) -> int | None:
    """Return the template line of the innermost frame of `template` in a traceback."""
    namespace = template.root_render_func.__globals__
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_globals is namespace:
            line = template.get_corresponding_lineno(traceback.tb_lineno)
        traceback = traceback.tb_next
    return line


def _secret_spellings(context: Mapping[str, Any]) -> tuple[str, ...]:
    secrets = context.get("secrets")
    if not isinstance(secrets, Mapping):
        return ()
    return tuple(s for value in secrets.values() for s in spellings(value))


def _pii_spellings(context: Mapping[str, Any], pii: frozenset[str]) -> tuple[str, ...]:
    return tuple(
        s
        for section, key in _pii_paths(pii)
        if isinstance(part := context.get(section), Mapping) and key in part
        for s in spellings(part[key])
    )


def _pii_paths(pii: frozenset[str]) -> list[tuple[str, str]]:
    """Return the (section, key) of each PII name: a dotted path (`consent.ip`, `fields.email`)
    or a bare field name (`email`)."""
    paths = []
    for name in pii:
        section, dot, key = name.partition(".")
        paths.append((section, key) if dot else ("fields", name))
    return paths


def masked_context(context: Mapping[str, Any], *, pii: frozenset[str]) -> dict[str, Any]:
    """Return a copy of the lead context with every secret, and the `pii` values, masked.

    `pii` names fields (`email`) or paths into the context (`consent.ip`, `fields.email`).
    """
    masked = dict(context)
    secrets = context.get("secrets")
    if isinstance(secrets, Mapping):
        masked["secrets"] = dict.fromkeys(secrets, MASKED)
    for section, key in _pii_paths(pii):
        part = masked.get(section)
        if isinstance(part, Mapping) and not is_missing(part.get(key)):
            masked[section] = {**part, key: MASKED}
    return masked


def compile_request(
    body_format: str,
    body_template: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> RequestTemplate:
    """Compile an endpoint's templates; raise TemplateError, with the line, if one is invalid.

    A blank body template leaves the body to the field mappings (`RenderedRequest.body` None).
    """
    return _compile(_LENIENT, body_format, body_template, query, headers)


def _compile(
    env: _Environment,
    body_format: str,
    body_template: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> RequestTemplate:
    compiler = _Compiler(env)
    body: Any = None
    form_json: set[str] = set()
    form_xml: set[str] = set()
    body_line = 1
    if body_template.strip():
        if body_format == BodyFormat.JSON:
            document, lines = compiler.json_document(body_template, "body")
            body = compiler.json_value(document, lines, "body")
        elif body_format == BodyFormat.FORM:
            body = _form(compiler, body_template, form_json, form_xml)
        elif body_format == BodyFormat.XML:
            # An XML declaration must come first: the template's leading blank lines are
            # dropped, and counted so that lines still match.
            source = body_template.lstrip()
            body_line += body_template[: len(body_template) - len(source)].count("\n")
            body = compiler.text(source.rstrip(), "body", body_line, xml=True)
        else:
            raise TemplateError(f"Unknown body format {body_format!r}.", None, "body")

    query_parts = [
        (str(name), compiler.text(_source(value), f"query {name}")) for name, value in query.items()
    ]
    header_parts = []
    for name, value in headers.items():
        where = f"header {name}"
        if not HEADER_NAME_RE.match(str(name)):
            raise TemplateError("This is not a valid HTTP header name.", None, where)
        source = _source(value)
        problem = header_problem(source.strip())
        if problem:
            raise TemplateError(f"The template {problem}.", None, where)
        header_parts.append((str(name), compiler.text(source.strip(), where)))

    query_statements = [
        statement
        for slot, statement in zip(compiler.slots, compiler.statements, strict=True)
        if slot.where.startswith("query ")
    ]
    return RequestTemplate(
        body_format=body_format,
        uses_secrets=_reads(compiler.statements, "secrets"),
        uses_pii_in_url=any(_reads(query_statements, name) for name in _PERSONAL_SECTIONS),
        _template=compiler.template(),
        _slots=compiler.slots,
        _body=None if body is None else _builder(body),
        _form_json=frozenset(form_json),
        _form_xml=frozenset(form_xml),
        _body_line=body_line,
        _query=query_parts,
        _headers=header_parts,
        _globals=dict(env.globals),
    )


def _source(value: Any) -> str:
    # A template read from TOML or JSON may give a number where text was meant.
    return value if isinstance(value, str) else as_text(value)


def _form(
    compiler: _Compiler, source: str, form_json: set[str], form_xml: set[str]
) -> tuple[tuple[str, Any], ...]:
    """Return a form template's (field, part) pairs, noting the JSON and XML fields."""
    document, lines = compiler.json_document(source, "body")
    if not isinstance(document, _JsonObject):
        raise TemplateError("A form body is a JSON object {field: value}.", 1, "body")
    fields: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for name, value in document:
        line = next(lines)
        if name in seen:
            raise TemplateError(f"The field {name!r} appears twice.", line, "body")
        seen.add(name)
        if isinstance(value, str):
            xml = value.lstrip().startswith("<")
            if xml:
                form_xml.add(name)
            source = value.strip() if xml else value
            leaf = compiler.json_leaf(source, "body", next(lines), xml=xml, typed=False)
            fields.append((name, leaf))
        elif isinstance(value, list):
            form_json.add(name)
            fields.append((name, compiler.json_value(value, lines, "body")))
        else:
            fields.append((name, as_text(value)))
    return tuple(fields)


# --- Checking ---------------------------------------------------------------------------------

# Everything that breaks a document built by pasting text: quotes, ampersands, angle brackets,
# a CDATA end, a comment's "--", backslashes, template syntax, unicode beyond the BMP, line and
# paragraph separators, control characters, NUL and a lone surrogate.
_UNUSUAL_TEXT = (
    "O'Brien \"&amp; <b>&</b> ]]> -- \\ {{ x }} {% y %} é 中文 😀 \u2028\u2029 "
    "\x00\x01\x0b\x1f\x7f \r\n\t \ud800 end"
)


def check_request(
    body_format: str,
    body_template: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    sample: Mapping[str, Any],
) -> None:
    """Refuse (TemplateError, with the line) templates that would fail or send an invalid request.

    The templates are rendered strictly with the sample lead (an unknown name is an error), then
    again with every free-text value of the sample replaced by text that breaks documents
    pasted together carelessly: the JSON and XML rendered must parse both times. Values a
    format filter reads (phones, dates, numbers, yes/no) are kept as they are in that second
    render: such values cannot hold markup, and the filters would refuse anything else.
    """
    template = _compile(_STRICT, body_format, body_template, query, headers)
    _check_documents(template, template.render(sample))
    # Headers are left out: a lead value with a line break fails its post at run time, in words.
    try:
        rendered = template._finish(template._run(_unusual(sample)), check_headers=False)
        _check_documents(template, rendered)
    except TemplateError as exc:
        message = f"With unusual values (quotes, ampersands, angle brackets, NUL): {exc.message}"
        raise TemplateError(message, exc.line, exc.where) from exc


def _check_documents(template: RequestTemplate, rendered: RenderedRequest) -> None:
    body = rendered.body
    if body is None:
        return
    if template.body_format == BodyFormat.JSON:
        try:
            json.loads(body)
        except ValueError as exc:
            raise TemplateError(f"The body is not valid JSON: {exc}.", None, "body") from exc
    elif template.body_format == BodyFormat.XML:
        _check_xml(body, "The rendered XML", template._body_line)
    elif template.body_format == BodyFormat.FORM:
        fields = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
        for name in template._form_xml:
            _check_xml(fields[name].encode("utf-8"), f"The XML of field {name}", None)


def _check_xml(document: bytes, what: str, first_line: int | None) -> None:
    try:
        SafeElementTree.fromstring(document)
    except Exception as exc:  # ParseError, or defusedxml's refusal of entities
        position = getattr(exc, "position", None)
        # The rendered document's lines are the template's unless a loop or a block added some.
        line = first_line + position[0] - 1 if position and first_line else None
        raise TemplateError(f"{what} is not well-formed: {exc}.", line, "body") from None


def _unusual(value: Any) -> Any:
    """Return a copy of the sample with each free-text value replaced by _UNUSUAL_TEXT."""
    if isinstance(value, Mapping):
        return {key: _unusual(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unusual(item) for item in value]
    if isinstance(value, str) and not is_missing(value) and not _formatted(value):
        return _UNUSUAL_TEXT
    return value


def _formatted(value: str) -> bool:
    """Return whether a format filter reads the text (a phone, date, time, number, yes/no)."""
    for reader in (us_phone, to_datetime, number, yes):
        try:
            reader(value)
        except Unusable:
            continue
        return True
    return False
