"""Parts of the demo marketplace (simulator/demo_marketplace.yaml) for tests that want its
real-world schemas and contracts without the whole demo."""

from __future__ import annotations

from typing import Any

from leads.models import Vertical
from marketplace.document import FORMAT_KEY
from marketplace.services import config_import
from simulator.demo import demo_document


def demo_vertical(slug: str) -> Vertical:
    """Store the demo's vertical with its fields (not its scoring rules: they name sources): the
    vertical a preset's templates are written for."""
    document = demo_document()
    (item,) = [v for v in document["verticals"] if v["slug"] == slug]
    vertical = {key: value for key, value in item.items() if key != "scoring_rules"}
    config_import(
        document={FORMAT_KEY: document[FORMAT_KEY], "verticals": [vertical]},
        reason="A test wants the demo's vertical",
    )
    return Vertical.objects.get(slug=slug)


def demo_contract(name: str) -> dict[str, Any]:
    """Return the demo's contract of this name as the file gives it."""
    (contract,) = [c for c in demo_document()["contracts"] if c["name"] == name]
    return contract
