from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.problems import api_path_without_slash, problem_type_view

admin.site.site_header = "Leadswitch"
admin.site.site_title = "Leadswitch admin"
admin.site.index_title = "Lead distribution console"

# The partner API and the staff/buyer API (reports, returns) are described in two schemas: each
# audience reads only the contract it holds.
partner_api = [
    path("api/v1/", include("leads.api.urls")),
    path("api/v1/", include("exchange.api.urls")),
]
reporting_api = [path("api/v1/", include("reporting.api.urls"))]
REPORTING_SCHEMA = {
    "TITLE": "Leadswitch reporting and returns API",
    "DESCRIPTION": "Reports for staff and BI tools (session or staff token), and returns of "
    "bought leads for buyers (buyer API key).",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "reporting.api.schema.document_problems",
    ],
}

# The configuration API (configuration as code, for staff): a schema of its own too.
config_api = [path("api/config/v1/", include("marketplace.api.urls"))]
CONFIG_SCHEMA = {
    "TITLE": "Leadswitch configuration API",
    "DESCRIPTION": "The marketplace's configuration as code (marketplace/): the whole document "
    "exported and imported with a dry-run diff, and each kind's objects by their natural keys. "
    "Staff by session or staff token; writes need a read-write token and the user's own "
    "permissions, and a `reason`.",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "marketplace.api.schema.document_kinds",
        "reporting.api.schema.document_problems",
    ],
}

# Swagger UI's start-up script is served from its own URL: the Content-Security-Policy allows no
# inline script without the response's nonce.
SWAGGER_TEMPLATE = "api/swagger_ui.html"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("dashboard/", include("reporting.urls")),
    # Team members' claim links, /teams/assignments/<id>/claim/: already sent, so they stay.
    path("teams/", include("teams.urls")),
    # A source's posting instructions by the signed link staff send its developer.
    path("posting-instructions/", include("leads.urls")),
    *partner_api,
    *reporting_api,
    *config_api,
    path("api/schema/", SpectacularAPIView.as_view(patterns=partner_api), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name=SWAGGER_TEMPLATE),
        name="api-docs",
    ),
    path(
        "api/schema/reporting/",
        SpectacularAPIView.as_view(patterns=reporting_api, custom_settings=REPORTING_SCHEMA),
        name="schema-reporting",
    ),
    path(
        "api/docs/reporting/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema-reporting", template_name=SWAGGER_TEMPLATE
        ),
        name="api-docs-reporting",
    ),
    path(
        "api/schema/config/",
        SpectacularAPIView.as_view(patterns=config_api, custom_settings=CONFIG_SCHEMA),
        name="schema-config",
    ),
    path(
        "api/docs/config/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema-config", template_name=SWAGGER_TEMPLATE
        ),
        name="api-docs-config",
    ),
    path("api/problems/", problem_type_view, name="problem-types"),
    path("api/problems/<slug:slug>", problem_type_view, name="problem-type"),
    # Last: only what nothing above matched.
    re_path(r"^api/(?P<path>.*[^/])$", api_path_without_slash),
]

handler400 = "config.problems.handler400"
handler404 = "config.problems.handler404"
handler500 = "config.problems.handler500"
