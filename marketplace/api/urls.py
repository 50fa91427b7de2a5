"""The configuration API's addresses, one collection and one object per kind of the file
(marketplace.kinds.SECTIONS), each object named by its natural key."""

from __future__ import annotations

from django.urls import path

from marketplace.api import views
from marketplace.kinds import SECTIONS

app_name = "config_api"


def _kind_urls() -> list:
    patterns = []
    for kind in SECTIONS:
        collection = kind.section.replace("_", "-")
        key = "/".join(f"<str:{name}>" for name in kind.key or ())
        patterns += [
            path(
                f"{collection}/",
                views.CollectionView.for_kind(kind).as_view(),
                name=f"{kind.section}",
            ),
            path(
                f"{collection}/{key}/",
                views.ObjectView.for_kind(kind).as_view(),
                name=f"{kind.section}-item",
            ),
        ]
    return patterns


urlpatterns = [
    path("export/", views.ExportView.as_view(), name="export"),
    path("import/", views.ImportView.as_view(), name="import"),
    *_kind_urls(),
    path(
        "suppression-lists/<str:name>/entries/",
        views.SuppressionEntriesView.as_view(),
        name="suppression-entries",
    ),
]
