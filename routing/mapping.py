"""Turn a lead into a buyer's ping or post request (pure, no database).

`map_fields` renames and reformats the lead's fields by the contract's field mappings;
`build_request` encodes them for the buyer's endpoint (JSON, form or XML body, or a GET query),
adds authentication, and keeps a masked copy of the URL and headers that is safe to store and show.
Loading mappings and endpoints from the database is the caller's job: `mapping_from_model` and
`endpoint_from_model` turn rows into the frozen specs used here.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import SplitResult, quote, quote_plus, urlencode, urlsplit, urlunsplit

from buyers.fields import mask
from buyers.models import (
    HEADER_NAME_RE,
    SECRET_HEADER_WORDS,
    AuthType,
    BodyFormat,
    EndpointKind,
    HttpMethod,
    MappingApplies,
    Transform,
)
from buyers.readiness import secrets_named
from routing.context import context_value, is_context_path
from routing.formats import (
    MASK,
    MappingError,
    apply_transform,
    as_text,
    header_value_problem,
    is_missing,
    lookup,
    scrub,
    spellings,
    xml_text,
)
from routing.templating import (
    RenderedRequest,
    RequestTemplate,
    TemplateError,
    compile_request,
)

# MASK, MappingError and apply_transform moved to routing/formats.py and stay names of this module.
__all__ = [
    "MASK",
    "USER_AGENT",
    "EndpointSpec",
    "MappingError",
    "MappingSpec",
    "OutgoingRequest",
    "PreparedEndpoint",
    "applicable_mappings",
    "apply_transform",
    "build_request",
    "endpoint_from_model",
    "map_fields",
    "mapping_from_model",
    "prepare_endpoint",
]

USER_AGENT = "Leadswitch/1"

_MISSING = object()
_XML_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9._\-]*$")


@dataclass(frozen=True)
class MappingSpec:
    """One field of the buyer's request: the parts of a FieldMapping that mapping needs."""

    source_fields: tuple[str, ...]
    target_field: str
    transform: str = Transform.NONE.value
    value_map: dict[str, Any] = field(default_factory=dict)
    static_value: str = ""
    default_value: str = ""
    applies_to: str = MappingApplies.BOTH.value


@dataclass(frozen=True)
class EndpointSpec:
    """Where and how a ping or post is sent: the parts of a DeliveryEndpoint a request needs."""

    kind: str
    url: str
    method: str = HttpMethod.POST.value
    body_format: str = BodyFormat.JSON.value
    headers: dict[str, str] = field(default_factory=dict)
    auth_type: str = AuthType.NONE.value
    auth_username: str = ""
    auth_param_name: str = ""
    auth_secret: str = ""
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 3.0
    body_template: str = ""
    query: dict[str, str] = field(default_factory=dict)
    accept: str = "application/json"


@dataclass(frozen=True)
class OutgoingRequest:
    """A request ready to send, and its masked twin (`masked_url`, `masked_headers`) to store."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    masked_url: str
    masked_headers: dict[str, str]
    timeout: tuple[float, float] = (1.0, 3.0)
    # The body to store when it differs from the one sent (a template put a secret in it).
    masked_body: bytes | None = None

    @property
    def body_text(self) -> str:
        """Return the body as stored and shown: as sent, but for secrets masked."""
        body = self.body if self.masked_body is None else self.masked_body
        return body.decode("utf-8", errors="replace")

    @classmethod
    def unmasked(
        cls, method: str, address: str, headers: dict[str, str], body: str
    ) -> OutgoingRequest:
        """Describe a delivery that is no HTTP call (an e-mail, a team's assignment) as a
        request, so that it is logged like a post; it holds no secret to mask."""
        return cls(
            method=method,
            url=address,
            headers=headers,
            body=body.encode(),
            masked_url=address,
            masked_headers=headers,
        )


def mapping_from_model(model: Any) -> MappingSpec:
    """Build a MappingSpec from a buyers.FieldMapping row."""
    return MappingSpec(
        source_fields=tuple(
            part.strip() for part in (model.source_field or "").split("+") if part.strip()
        ),
        target_field=model.target_field,
        transform=str(model.transform or Transform.NONE),
        value_map=dict(model.value_map) if isinstance(model.value_map, dict) else {},
        static_value=model.static_value or "",
        default_value=model.default_value or "",
        applies_to=str(model.applies_to or MappingApplies.BOTH),
    )


def endpoint_from_model(model: Any, *, accept: str = "application/json") -> EndpointSpec:
    """Build an EndpointSpec from a buyers.DeliveryEndpoint row (secret already decrypted);
    `accept` is the Accept header of the answer format its response rule reads."""
    headers = model.headers if isinstance(model.headers, dict) else {}
    return EndpointSpec(
        kind=str(model.kind),
        url=model.url,
        method=str(model.method),
        body_format=str(model.body_format),
        headers={str(name): str(value) for name, value in headers.items()},
        auth_type=str(model.auth_type),
        auth_username=model.auth_username or "",
        auth_param_name=model.auth_param_name or "",
        auth_secret=model.auth_secret or "",
        connect_timeout_s=model.connect_timeout_ms / 1000,
        read_timeout_s=model.read_timeout_ms / 1000,
        body_template=model.body_template or "",
        query={str(name): str(value) for name, value in (model.query or {}).items()},
        accept=accept,
    )


# --- Mapping ----------------------------------------------------------------------------------


def _source_value(name: str, data: Mapping[str, Any], context: Mapping[str, Any] | None) -> Any:
    if context is not None and is_context_path(name):
        return context_value(context, name)
    return data.get(name)


def _mapped_value(
    mapping: MappingSpec, data: Mapping[str, Any], context: Mapping[str, Any] | None
) -> Any:
    if not mapping.source_fields:
        return mapping.static_value or _MISSING
    values = [_source_value(name, data, context) for name in mapping.source_fields]
    present = [value for value in values if not is_missing(value)]
    if not present:
        return _MISSING
    if len(mapping.source_fields) == 1:
        value = present[0]
    else:
        value = " ".join(as_text(part).strip() for part in present)
    label = f"Field {'+'.join(mapping.source_fields)} (sent as {mapping.target_field})"
    value = apply_transform(mapping.transform, value, field=label)
    if is_missing(value):
        return _MISSING
    return lookup(value, mapping.value_map)


def applicable_mappings(kind: str, mappings: Sequence[MappingSpec]) -> list[MappingSpec]:
    """The mappings that build a ping (`kind="ping"`) or a post."""
    return [m for m in mappings if m.applies_to in (MappingApplies.BOTH, kind)]


def map_fields(
    kind: str,
    data: Mapping[str, Any],
    mappings: Sequence[MappingSpec],
    ping_fields: AbstractSet[str],
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the fields of a ping or post, named and formatted as the buyer expects.

    Without mappings for this kind the lead's own fields go as they are (a ping: only
    `ping_fields`). A ping never carries a lead field outside `ping_fields`, whatever the
    mappings say: such a mapping is skipped for pings. Where a target has a mapping for this
    kind only, that mapping replaces the one for both kinds. A source written as a dotted path
    (`lead.id`, `consent.trustedform_cert_url`, `ping.bid_id`) reads the lead's `context`
    (routing/context.py), which for a ping holds nothing personal.
    """
    if kind not in (EndpointKind.PING, EndpointKind.POST):
        raise ValueError(f"kind must be 'ping' or 'post', not {kind!r}")
    applicable = applicable_mappings(kind, mappings)
    if not applicable:
        if kind == EndpointKind.PING:
            return {name: value for name, value in data.items() if name in ping_fields}
        return dict(data)

    specific = {m.target_field for m in applicable if m.applies_to == kind}
    fields: dict[str, Any] = {}
    for mapping in applicable:
        if mapping.applies_to == MappingApplies.BOTH and mapping.target_field in specific:
            continue
        # The PII guard: a ping is anonymous, so a mapping that reads any non-ping field is
        # dropped as a whole (its default too), never sent with the PII part left out.
        if kind == EndpointKind.PING and not all(
            f in ping_fields or (context is not None and is_context_path(f))
            for f in mapping.source_fields
        ):
            continue
        value = _mapped_value(mapping, data, context)
        if value is _MISSING:
            if mapping.default_value:
                fields[mapping.target_field] = mapping.default_value
            continue
        fields[mapping.target_field] = value
    return fields


# --- Requests ---------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    # Decimal as text: a float would round money.
    return str(value)


def _xml_name(name: str) -> str:
    """Return `name` as a plain XML element name (letters, digits, . _ -), replacing the rest."""
    if _XML_NAME_RE.match(name) and not name.lower().startswith("xml"):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9._\-]", "_", name)
    # Names may not start with a digit, . or -, and xml... is reserved.
    if not cleaned or not re.match(r"[A-Za-z_]", cleaned) or cleaned.lower().startswith("xml"):
        cleaned = "_" + cleaned
    return cleaned


def _encode_body(body_format: str, fields: Mapping[str, Any]) -> tuple[bytes, str]:
    if body_format == BodyFormat.JSON:
        try:
            text = json.dumps(
                fields,
                separators=(",", ":"),
                ensure_ascii=False,
                allow_nan=False,
                default=_json_default,
            )
        except ValueError:
            raise MappingError(
                "A field holds a number JSON cannot carry (NaN or infinity)."
            ) from None
        # Every str sits inside a JSON string, where backslashreplace's \udxxx for a lone
        # surrogate is exactly JSON's escape for it: the body stays valid instead of failing.
        return text.encode("utf-8", "backslashreplace"), "application/json"
    if body_format == BodyFormat.FORM:
        pairs = [(name, as_text(value)) for name, value in fields.items()]
        body = urlencode(pairs, encoding="utf-8", errors="replace").encode("ascii")
        return body, "application/x-www-form-urlencoded"
    if body_format == BodyFormat.XML:
        elements = "".join(
            f"<{tag}>{xml_text(value)}</{tag}>"
            for tag, value in ((_xml_name(name), value) for name, value in fields.items())
        )
        text = f'<?xml version="1.0" encoding="UTF-8"?><lead>{elements}</lead>'
        return text.encode("utf-8"), "application/xml; charset=utf-8"
    raise MappingError(f"The endpoint has an unknown body format {body_format!r}.")


def _set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing any spelling of the same name (header names ignore case)."""
    for existing in [n for n in headers if n.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


def _check_header(name: str, value: str) -> None:
    if not HEADER_NAME_RE.match(name):
        raise MappingError(f"{name!r} is not a valid HTTP header name.")
    problem = header_value_problem(value)
    if problem:
        # In words an ops test post can show, rather than from deep inside the HTTP client.
        raise MappingError(f"Header {name} {problem}.")


def _secret_name(name: str) -> bool:
    """Whether a header or query parameter is named like a credential (api_key, X-Token)."""
    return any(word in name.lower() for word in SECRET_HEADER_WORDS)


def _masked(name: str, value: str) -> str:
    # Refused by DeliveryEndpoint.clean; masked anyway for rows saved before that rule.
    if _secret_name(name):
        return mask(value)
    return value


def _auth(endpoint: EndpointSpec) -> tuple[tuple[str, str] | None, tuple[str, str] | None, str]:
    """Return the auth header, the auth query parameter, and the base64 credential (basic)."""
    kind = endpoint.auth_type
    secret = endpoint.auth_secret
    if kind == AuthType.NONE:
        return None, None, ""
    if kind not in AuthType.values:
        raise MappingError(f"The endpoint has an unknown authentication type {kind!r}.")
    if not secret:
        raise MappingError("The endpoint's authentication has no secret.")
    if kind == AuthType.BASIC:
        if not endpoint.auth_username or ":" in endpoint.auth_username:
            raise MappingError("Basic authentication needs a user name without ':'.")
        credential = f"{endpoint.auth_username}:{secret}".encode()
        token = base64.b64encode(credential).decode("ascii")
        return ("Authorization", f"Basic {token}"), None, token
    if kind == AuthType.BEARER:
        return ("Authorization", f"Bearer {secret}"), None, ""
    if not endpoint.auth_param_name:
        raise MappingError("Name the header or query parameter that carries the key.")
    if kind == AuthType.HEADER:
        return (endpoint.auth_param_name, secret), None, ""
    return None, (endpoint.auth_param_name, secret), ""


def _with_query(url_parts: SplitResult, *extra: str) -> str:
    query = "&".join(part for part in (url_parts.query, *extra) if part)
    return urlunsplit(url_parts._replace(query=query))


@dataclass(frozen=True)
class PreparedEndpoint:
    """An endpoint with everything that does not depend on the lead worked out once: its
    method, URL, headers and authentication, checked, their masked twins, and its compiled
    request template, if any."""

    method: str
    url_parts: SplitResult
    body_format: str
    headers: dict[str, str]
    masked_headers: dict[str, str]
    auth_query: tuple[str, str] | None
    spellings: tuple[str, ...]
    timeout: tuple[float, float]
    # The URLs when they do not carry the fields (anything but GET).
    url: str
    masked_url: str
    template: RequestTemplate | None = None
    # The secrets the template reads: a request without one of them is refused.
    secret_names: frozenset[str] = frozenset()

    @property
    def query_is_templated(self) -> bool:
        """A GET whose query parameters are templates: the template writes the lead's fields
        where a POST's body template would."""
        return (
            self.method == HttpMethod.GET
            and self.template is not None
            and self.template.writes_query
        )

    def _render(
        self, context: Mapping[str, Any], secrets: Mapping[str, str], personal: frozenset[str]
    ) -> tuple[RenderedRequest | None, RenderedRequest | None]:
        """The template's request for the lead, and its copy to store; none without one."""
        if self.template is None:
            return None, None
        missing = sorted(self.secret_names - set(secrets))
        if missing:
            raise MappingError(
                f"The endpoint reads the secret {', '.join(missing)}, which the contract does "
                "not hold."
            )
        template = self.template
        try:
            rendered = template.render(context)
            # The copy on record differs only where a secret, or a personal value in the
            # query, was written: otherwise it is the request itself, rendered once.
            if template.uses_secrets or (template.uses_pii_in_url and personal):
                return rendered, template.render_masked(context, pii=personal)
            return rendered, rendered
        except TemplateError as exc:
            raise MappingError(str(exc)) from None
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            # Staff-written: a template may still fail outside Jinja (say, a dict with tuple
            # keys to serialise). Named by its kind only: its text may quote a lead's value.
            raise MappingError(f"The template cannot be rendered ({type(exc).__name__}).") from None

    def request(
        self,
        fields: Mapping[str, Any],
        *,
        personal: AbstractSet[str] = frozenset(),
        context: Mapping[str, Any] | None = None,
        personal_fields: frozenset[str] = frozenset(),
    ) -> OutgoingRequest:
        """Encode the lead's mapped fields, or render its template, into a request.

        `personal` names the mapped fields that carry personal data: a GET sends them in its
        query, and the URL kept on record shows them masked. A template renders the lead's
        `context` (routing/context.py); its stored copy never holds a secret, nor in the URL
        a value of the `personal_fields`: field names (`email`) or paths into the context
        (`consent.ip`).
        """
        context = context if context is not None else {}
        secrets = context.get("secrets") or {}
        rendered, masked = self._render(context, secrets, personal_fields)
        body = b""
        pairs: list[tuple[str, str]] = []
        masked_pairs: list[tuple[str, str]] = []
        if rendered is not None and rendered.body is not None:
            body = rendered.body
        elif self.method == HttpMethod.GET:
            pairs = [(name, as_text(value)) for name, value in fields.items()]
            masked_pairs = [
                (name, MASK if name in personal or _secret_name(name) else value)
                for name, value in pairs
            ]
        else:
            body, _ = _encode_body(self.body_format, fields)
        headers, masked_headers = dict(self.headers), dict(self.masked_headers)
        masked_body = None
        if rendered is not None and masked is not None:
            pairs += rendered.query
            masked_pairs += masked.query
            for name, value in rendered.headers.items():
                _set_header(headers, name, value)
            for name, value in masked.headers.items():
                _set_header(masked_headers, name, _masked(name, value))
            if masked.body is not None and masked.body != body:
                masked_body = masked.body
        url, masked_url = self.url, self.masked_url
        if pairs:
            url, masked_url = _urls(
                self.url_parts,
                urlencode(pairs, errors="replace"),
                urlencode(masked_pairs, errors="replace"),
                self.auth_query,
                self.spellings,
            )
        if secrets:
            # A mapping may read a secret too (`secrets.api_key`): never on record.
            written = tuple(w for value in secrets.values() for w in spellings(value))
            masked_url = scrub(masked_url, written)
            stored = (masked_body if masked_body is not None else body).decode(
                "utf-8", errors="replace"
            )
            if (clean := scrub(stored, written)) != stored:
                masked_body = clean.encode("utf-8")
        return OutgoingRequest(
            method=self.method,
            url=url,
            headers=headers,
            body=body,
            masked_url=masked_url,
            masked_headers=masked_headers,
            timeout=self.timeout,
            masked_body=masked_body,
        )


def _urls(
    url_parts: SplitResult,
    field_query: str,
    masked_field_query: str,
    auth_query: tuple[str, str] | None,
    spellings: Sequence[str],
) -> tuple[str, str]:
    """The URL to call and the one to store, with the fields' query and the key's, if any."""
    if auth_query:
        param = quote_plus(auth_query[0])
        url = _with_query(url_parts, field_query, f"{param}={quote_plus(auth_query[1])}")
        masked_url = _with_query(url_parts, masked_field_query, f"{param}={mask(auth_query[1])}")
    else:
        url = _with_query(url_parts, field_query)
        masked_url = _with_query(url_parts, masked_field_query)
    return url, scrub(masked_url, spellings)


@lru_cache(maxsize=2048)
def _compiled(
    body_format: str,
    body_template: str,
    query: tuple[tuple[str, str], ...],
    headers: tuple[tuple[str, str], ...],
) -> RequestTemplate:
    """An endpoint's templates compiled once per process and text: routing reloads its cached
    contracts after any change and every ELIGIBILITY_RULES_TTL, and would compile them again.
    A compiled template holds no state of a lead, so threads share it."""
    return compile_request(body_format, body_template, dict(query), dict(headers))


def prepare_endpoint(endpoint: EndpointSpec) -> PreparedEndpoint:
    """Check the endpoint and work out all of its requests have in common.

    GET sends the fields in the query string and no body. The masked URL and headers carry no
    secret and may be stored and shown.
    """
    method = endpoint.method.upper()
    if method not in HttpMethod.values:
        raise MappingError(f"The endpoint has an unsupported HTTP method {endpoint.method!r}.")
    url_parts = urlsplit(endpoint.url)
    if url_parts.scheme not in ("http", "https") or not url_parts.hostname:
        raise MappingError("The endpoint URL must be an http:// or https:// address.")

    headers = {"User-Agent": USER_AGENT, "Accept": endpoint.accept}
    if method != HttpMethod.GET:
        _, content_type = _encode_body(endpoint.body_format, {})
        headers["Content-Type"] = content_type
    # Header values that are templates are rendered per lead; the others are set once here.
    templated = {n: v for n, v in endpoint.headers.items() if any(m in v for m in ("{{", "{%"))}
    for name, value in endpoint.headers.items():
        if name not in templated:
            _set_header(headers, name, value)
    template = None
    if endpoint.body_template.strip() or endpoint.query or templated:
        try:
            template = _compiled(
                endpoint.body_format,
                endpoint.body_template,
                tuple(endpoint.query.items()),
                tuple(templated.items()),
            )
        except TemplateError as exc:
            raise MappingError(str(exc)) from None

    auth_header, auth_query, basic_token = _auth(endpoint)
    if auth_header:
        _set_header(headers, *auth_header)
    for name, value in headers.items():
        _check_header(name, value)

    secret = endpoint.auth_secret if endpoint.auth_type != AuthType.NONE else ""
    spellings = tuple(
        s for s in (secret, quote(secret, safe=""), quote_plus(secret), basic_token) if s
    )
    auth_header_name = auth_header[0] if auth_header else None
    masked_headers = {
        name: scrub(mask(secret) if name == auth_header_name else _masked(name, value), spellings)
        for name, value in headers.items()
    }
    url, masked_url = _urls(url_parts, "", "", auth_query, spellings)
    return PreparedEndpoint(
        method=method,
        url_parts=url_parts,
        body_format=endpoint.body_format,
        headers=headers,
        masked_headers=masked_headers,
        auth_query=auth_query,
        spellings=spellings,
        timeout=(endpoint.connect_timeout_s, endpoint.read_timeout_s),
        url=url,
        masked_url=masked_url,
        template=template,
        secret_names=frozenset(
            name
            for text in (endpoint.body_template, *endpoint.query.values(), *templated.values())
            for name in secrets_named(text)
        ),
    )


def build_request(endpoint: EndpointSpec, fields: Mapping[str, Any]) -> OutgoingRequest:
    """Encode mapped fields for the endpoint, with its headers and authentication."""
    return prepare_endpoint(endpoint).request(fields)
