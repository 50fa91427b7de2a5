"""The configuration API: the whole document (export, import) and each kind's objects, named by
their natural keys, for staff by session or staff token.

Every write goes through config_import or config_delete (marketplace.services): the command's
validation, locking, history and cache touches. The API takes a secret in clear (it is the
value) or as its placeholder (the stored secret stays), never from the server's environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.admin_pii import mask_value, pii_visible
from config.problems import problem_response
from leads.models import SuppressionList
from leads.services import suppression_list_add
from marketplace.api.access import (
    IsActiveStaff,
    change_permissions,
    document_personal_paths,
    mask_document,
    mask_personal,
    missing,
    permission,
    personal_paths,
    view_permissions,
)
from marketplace.api.schema import DiffSerializer, EntriesAddedSerializer, ref
from marketplace.document import (
    FORMAT_KEY,
    FORMAT_VERSION,
    FORMATS,
    Change,
    DocumentError,
    Format,
    Problem,
    as_document,
    dump,
    parse,
    storable,
)
from marketplace.kinds import SECTIONS, Kind
from marketplace.services import (
    ConfigRefused,
    ImportResult,
    ObjectMissing,
    config_delete,
    config_export,
    config_import,
    config_objects,
)
from reporting.api.auth import StaffTokenAuthentication, TokenScopeAllows

logger = logging.getLogger(__name__)

ACTIONS = ("created", "changed", "unchanged", "absent", "deleted")

DOCUMENT_REF = {"$ref": "#/components/schemas/ConfigDocument"}
REASON = OpenApiParameter(
    "reason",
    str,
    required=True,
    description="Why: kept in the configuration history with your user (every write).",
)
DRY_RUN = OpenApiParameter(
    "dry_run", bool, description="Answer what the write would do; change nothing."
)
VERTICAL = OpenApiParameter(
    "vertical",
    str,
    many=True,
    description="Only these verticals and what buys or sells in them (repeatable).",
)
READ_PROBLEMS = {
    400: OpenApiResponse(description="A query parameter is not valid; `errors` names it."),
    401: OpenApiResponse(description="No session and no valid staff token."),
    403: OpenApiResponse(description="Not active staff with the view permissions."),
    422: OpenApiResponse(
        description="Two objects share a natural key, which names them: rename one (`errors`)."
    ),
}
WRITE_PROBLEMS = {
    400: OpenApiResponse(
        description="A parameter is not valid, or the body is not YAML or JSON of this shape."
    ),
    401: OpenApiResponse(description="No session and no valid staff token."),
    403: OpenApiResponse(
        description="A read token, or the user lacks the permissions the write takes (add, "
        "change or delete of each object it touches; personal fields need unmasked access)."
    ),
    415: OpenApiResponse(description="Send application/json or application/yaml."),
    422: OpenApiResponse(
        description="Refused, nothing changed: `errors` maps each place to its problems."
    ),
}


# --- Bodies: YAML or JSON, read and written by the file's own rules ----------------------------


class _DocumentParser(BaseParser):
    fmt: ClassVar[Format]

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            text = stream.read().decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.ParseError("The body is not UTF-8 text.") from None
        try:
            return parse(text, self.fmt)
        except DocumentError as exc:
            raise exceptions.ParseError(str(exc)) from None


class JSONDocumentParser(_DocumentParser):
    media_type = "application/json"
    fmt = "json"


class YAMLDocumentParser(_DocumentParser):
    media_type = "application/yaml"
    fmt = "yaml"


class _DocumentRenderer(BaseRenderer):
    fmt: ClassVar[Format]
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return dump(data, self.fmt).encode()


class JSONDocumentRenderer(_DocumentRenderer):
    media_type = "application/json"
    format = "json"
    fmt = "json"


class YAMLDocumentRenderer(_DocumentRenderer):
    media_type = "application/yaml"
    format = "yaml"
    fmt = "yaml"


# --- Query parameters ---------------------------------------------------------------------------


class ReasonParameters(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500, help_text="Why: kept in the configuration history with your user."
    )


class WriteParameters(ReasonParameters):
    dry_run = serializers.BooleanField(
        default=False, help_text="Answer what the write would do; change nothing."
    )


class ImportParameters(WriteParameters):
    prune = serializers.BooleanField(
        default=False,
        help_text="Delete what the document's sections leave out (else it is left alone).",
    )


class ExportParameters(serializers.Serializer):
    vertical = serializers.ListField(
        child=serializers.SlugField(),
        required=False,
        help_text="Only these verticals and what buys or sells in them (repeatable).",
    )
    format = serializers.ChoiceField(choices=FORMATS, default="yaml")


class EntriesSerializer(serializers.Serializer):
    entries = serializers.ListField(
        child=serializers.CharField(max_length=320),
        allow_empty=False,
        max_length=10000,
        help_text="E-mail addresses and phone numbers to suppress (at most 10,000 a request).",
    )


class _Problem(Exception):
    """Answer this problem response: raised where a view decides it."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _flat(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix or "_": [str(e) for e in errors]}


def _parameters(serializer: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    parameters = serializer(data=request.query_params)
    if not parameters.is_valid():
        raise _Problem(
            problem_response(
                "invalid-parameters",
                "A query parameter is not valid; see `errors`.",
                errors=_flat(parameters.errors),
            )
        )
    return dict(parameters.validated_data)


def refused(problems: list[Problem], relative: Callable[[str], str]) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for problem in problems:
        errors.setdefault(relative(problem.path) or "_", []).append(problem.message)
    return problem_response(
        "config-refused",
        f"{len(problems)} problem(s); nothing was changed. See `errors`.",
        errors=errors,
    )


def diff_body(
    result: ImportResult,
    changes: list[Change],
    relative: Callable[[str], str],
    *,
    masked: bool,
) -> dict[str, Any]:
    """What a write did (or would do): each object created, changed (field: old -> new),
    left alone or deleted, with its place; a label that is personal data masked for whoever
    sees it masked."""
    body: dict[str, Any] = {"applied": result.applied, **{action: [] for action in ACTIONS}}
    for change in changes:
        label = mask_value(change.label) if masked and change.personal else change.label
        entry: dict[str, Any] = {"path": relative(change.path), "label": label}
        if change.action == "changed":
            entry["fields"] = [
                {"name": name, "old": old, "new": new} for name, old, new in change.fields
            ]
        body[change.action].append(entry)
    return body


def _whole(path: str) -> str:
    return path


# --- The views ------------------------------------------------------------------------------


class ConfigView(APIView):
    """The base of every endpoint: staff by token or session; reads by the user's view
    permissions, writes within the token's scope by the user's own permissions."""

    authentication_classes = [StaffTokenAuthentication, SessionAuthentication]
    permission_classes = [IsActiveStaff, TokenScopeAllows]
    throttle_classes: list = []
    parser_classes = [JSONDocumentParser, YAMLDocumentParser]
    relative: Callable[[str], str] = staticmethod(_whole)

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, _Problem):
            return exc.response
        if isinstance(exc, ConfigRefused):
            return refused(exc.problems, self.relative)
        return super().handle_exception(exc)

    def require(self, request: Request, permissions: list[str]) -> None:
        lacking = missing(request.user, permissions)
        if lacking:
            raise exceptions.PermissionDenied(
                f"Your account lacks the permission(s) {', '.join(lacking)}."
            )

    def require_any(self, request: Request, kind: Kind, actions: tuple[str, ...]) -> None:
        wanted = [permission(kind.model, action) for action in actions]
        if not any(request.user.has_perm(p) for p in wanted):
            raise exceptions.PermissionDenied(
                f"Your account lacks the permission {' or '.join(wanted)}."
            )

    def require_personal(self, request: Request, paths: list[str]) -> None:
        if paths and not pii_visible(request):
            raise exceptions.PermissionDenied(
                "You see personal data masked, so you may not write it: "
                + ", ".join(paths[:10])
                + "."
            )

    def apply(self, request: Request, write: Callable[[], ImportResult]) -> ImportResult:
        """Run the write; undo it when it did what the user may not do."""
        with transaction.atomic():
            try:
                result = write()
            except ConfigRefused as exc:
                # What the user may not do is refused as such, whatever else is wrong.
                self.require(request, change_permissions(exc.changes))
                raise
            self.require(request, change_permissions(result.changes))
        return result


@extend_schema(
    summary="The whole configuration, as `manage.py config export` writes it",
    parameters=[
        VERTICAL,
        OpenApiParameter("format", str, enum=list(FORMATS), description="yaml (default) or json"),
    ],
    responses={
        (200, "application/yaml"): OpenApiResponse(response=DOCUMENT_REF),
        (200, "application/json"): OpenApiResponse(response=DOCUMENT_REF),
        **READ_PROBLEMS,
    },
    tags=["document"],
)
class ExportView(ConfigView):
    renderer_classes = [YAMLDocumentRenderer, JSONDocumentRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # `format` is the file's format (the command's --format), checked with the others once
        # the caller is known (negotiation comes first): an unknown one must not answer 404.
        if request.query_params.get("format", "yaml") not in FORMATS:
            force = True
        return super().perform_content_negotiation(request, force)

    def get(self, request: Request) -> Response:
        parameters = _parameters(ExportParameters, request)
        verticals = parameters.get("vertical") or None
        kinds = [k for k in SECTIONS if not verticals or k.scope is not None]
        self.require(request, view_permissions(kinds))
        try:
            document = config_export(verticals=verticals)
        except ConfigRefused as exc:
            if verticals and all(not p.path for p in exc.problems):
                raise _Problem(
                    problem_response(
                        "invalid-parameters",
                        "A query parameter is not valid; see `errors`.",
                        errors={"vertical": [p.message for p in exc.problems]},
                    )
                ) from None
            raise
        if not pii_visible(request):
            document = mask_document(document)
        return Response(document)


class ImportView(ConfigView):
    @extend_schema(
        summary="Make the configuration what the document says (all or nothing), with its diff",
        parameters=[
            REASON,
            DRY_RUN,
            OpenApiParameter(
                "prune", bool, description="Delete what the document's sections leave out."
            ),
        ],
        request={"application/json": DOCUMENT_REF, "application/yaml": DOCUMENT_REF},
        responses={200: DiffSerializer, **WRITE_PROBLEMS},
        tags=["document"],
    )
    def post(self, request: Request) -> Response:
        parameters = _parameters(ImportParameters, request)
        try:
            document = as_document(request.data)
        except DocumentError as exc:
            raise exceptions.ParseError(str(exc)) from None
        for kind in SECTIONS:
            if kind.section in document:
                self.require_any(request, kind, ("add", "change", "delete"))
        self.require_personal(request, document_personal_paths(document))
        result = self.apply(
            request,
            lambda: config_import(
                document=document,
                reason=parameters["reason"],
                user=request.user,
                prune=parameters["prune"],
                dry_run=parameters["dry_run"],
                environ={},
                literal_secrets=True,
            ),
        )
        return Response(diff_body(result, result.changes, _whole, masked=not pii_visible(request)))


class KindView(ConfigView):
    """One kind's objects: set by `for_kind`."""

    kind: ClassVar[Kind]

    @classmethod
    def for_kind(cls, kind: Kind) -> type[KindView]:
        name = "".join(word.title() for word in kind.section.split("_")) + cls.__name__
        view = type(name, (cls,), {"kind": kind, "__doc__": cls.__doc__})
        return extend_schema_view(**cls.operations(kind))(view)

    @classmethod
    def operations(cls, kind: Kind) -> dict[str, Any]:
        raise NotImplementedError


class CollectionView(KindView):
    @classmethod
    def operations(cls, kind: Kind) -> dict[str, Any]:
        plural = str(kind.model._meta.verbose_name_plural)
        return {
            "get": extend_schema(
                operation_id=f"config_{kind.section}_list",
                summary=f"Every {kind.noun}, as the file writes them",
                parameters=[VERTICAL],
                responses={
                    200: OpenApiResponse(response={"type": "array", "items": ref(kind)}),
                    **READ_PROBLEMS,
                },
                tags=[plural],
            )
        }

    def get(self, request: Request) -> Response:
        parameters = _parameters(ExportParameters, request)
        self.require(request, view_permissions([self.kind]))
        items = config_objects(section=self.kind.section, verticals=parameters.get("vertical"))
        if not pii_visible(request):
            items = mask_personal(self.kind, items)
        return Response(items)


class ObjectView(KindView):
    @classmethod
    def operations(cls, kind: Kind) -> dict[str, Any]:
        plural = str(kind.model._meta.verbose_name_plural)
        keys = [
            OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH)
            for name in kind.key or ()
        ]
        body = {"application/json": ref(kind), "application/yaml": ref(kind)}
        not_found = {404: OpenApiResponse(description=f"No {kind.noun} of this name.")}
        return {
            "get": extend_schema(
                operation_id=f"config_{kind.section}_get",
                summary=f"One {kind.noun}",
                parameters=keys,
                responses={200: OpenApiResponse(response=ref(kind)), **READ_PROBLEMS, **not_found},
                tags=[plural],
            ),
            "put": extend_schema(
                operation_id=f"config_{kind.section}_put",
                summary=f"Create or replace a {kind.noun} (its parts as the body lists them)",
                parameters=[*keys, REASON, DRY_RUN],
                request=body,
                responses={200: DiffSerializer, 201: DiffSerializer, **WRITE_PROBLEMS},
                tags=[plural],
            ),
            "delete": extend_schema(
                operation_id=f"config_{kind.section}_delete",
                summary=f"Delete a {kind.noun} and its parts",
                parameters=[*keys, REASON, DRY_RUN],
                responses={200: DiffSerializer, **WRITE_PROBLEMS, **not_found},
                tags=[plural],
            ),
        }

    @property
    def prefix(self) -> str:
        return f"{self.kind.section}[0]"

    def relative(self, path: str) -> str:  # type: ignore[override]
        """A place in the one-object document, as a place in the object."""
        if path in (self.prefix, self.kind.section):
            return ""
        if path.startswith(f"{self.prefix}."):
            return path[len(self.prefix) + 1 :]
        return path

    def key_values(self) -> dict[str, str]:
        return {name: self.kwargs[name] for name in self.kind.key or ()}

    def key(self) -> Any:
        values = self.key_values()
        return next(iter(values.values())) if len(values) == 1 else values

    def get(self, request: Request, **kwargs: str) -> Response:
        self.require(request, view_permissions([self.kind]))
        self.require_storable_key()
        items = config_objects(section=self.kind.section, key=self.key())
        if not items:
            raise exceptions.NotFound(f"No {self.kind.noun} {self._named()}.")
        item = items[0]
        return Response(item if pii_visible(request) else mask_personal(self.kind, item))

    def put(self, request: Request, **kwargs: str) -> Response:
        parameters = _parameters(WriteParameters, request)
        body = request.data
        if not isinstance(body, dict):
            raise exceptions.ParseError(f"Give the {self.kind.noun} as a mapping of its fields.")
        body = dict(body)
        errors = {}
        for name, value in self.key_values().items():
            if not storable(value):
                errors[name] = ["No database can store this text (NUL)."]
            elif name not in body:
                body[name] = value
            elif body[name] != value:
                errors[name] = [f"The URL names {value!r}; the body says {body[name]!r}."]
        if errors:
            raise _Problem(
                problem_response(
                    "config-refused",
                    "The body names another object than the URL; nothing was changed.",
                    errors=errors,
                )
            )
        self.require_any(request, self.kind, ("add", "change"))
        self.require_personal(request, personal_paths(self.kind, body))
        result = self.apply(
            request,
            lambda: config_import(
                document={FORMAT_KEY: FORMAT_VERSION, self.kind.section: [body]},
                reason=parameters["reason"],
                user=request.user,
                dry_run=parameters["dry_run"],
                environ={},
                literal_secrets=True,
                replace_parts=True,
            ),
        )
        # The section's other objects are left alone: not this write's news.
        changes = [c for c in result.changes if c.path != self.kind.section]
        created = any(c.action == "created" and c.path == self.prefix for c in changes)
        return Response(
            diff_body(result, changes, self.relative, masked=not pii_visible(request)),
            status=status.HTTP_201_CREATED if created and result.applied else status.HTTP_200_OK,
        )

    def delete(self, request: Request, **kwargs: str) -> Response:
        parameters = _parameters(WriteParameters, request)
        self.require(request, [permission(self.kind.model, "delete")])
        self.require_storable_key()
        try:
            result = config_delete(
                section=self.kind.section,
                key=self.key(),
                reason=parameters["reason"],
                user=request.user,
                dry_run=parameters["dry_run"],
            )
        except ObjectMissing:
            raise exceptions.NotFound(f"No {self.kind.noun} {self._named()}.") from None
        return Response(
            diff_body(result, result.changes, self.relative, masked=not pii_visible(request))
        )

    def require_storable_key(self) -> None:
        # No object is named by a text no database can hold (PostgreSQL refuses even to look
        # one up).
        if not all(storable(value) for value in self.key_values().values()):
            raise exceptions.NotFound(f"No {self.kind.noun} {self._named()}.")

    def _named(self) -> str:
        return " / ".join(repr(v) for v in self.key_values().values())


class SuppressionEntriesView(ConfigView):
    @extend_schema(
        summary="Append e-mail addresses and phones to a suppression list (stored hashed)",
        description="Entries are never readable back: the answer is only counts.",
        parameters=[REASON],
        request=EntriesSerializer,
        responses={
            200: EntriesAddedSerializer,
            **WRITE_PROBLEMS,
            404: OpenApiResponse(description="No suppression list of this name."),
        },
        tags=["suppression lists"],
    )
    def post(self, request: Request, name: str) -> Response:
        parameters = _parameters(ReasonParameters, request)
        body = EntriesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.require(request, ["leads.change_suppressionlist"])
        suppression_list = (
            SuppressionList.objects.filter(name=name).first() if storable(name) else None
        )
        if suppression_list is None:
            raise exceptions.NotFound(f"No suppression list {name!r}.")
        # One entry a line: a phone written with spaces is one entry.
        text = "\n".join("".join(entry.split()) for entry in body.validated_data["entries"])
        result = suppression_list_add(suppression_list=suppression_list, text=text)
        # The list has no history of its own: the log says who added how many, and why.
        logger.info(
            "suppression list %s: %d entries added by %s (%s)",
            suppression_list.pk,
            result.added,
            request.user.get_username(),
            parameters["reason"],
        )
        return Response(
            {
                "added": result.added,
                "already_listed": result.already_listed,
                "rejected": result.rejected_count,
            }
        )
