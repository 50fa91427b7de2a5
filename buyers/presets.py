"""The integration catalogue: ready-made deliveries for common buyer-side platforms and formats.

Each preset is a TOML file in `buyers/presets/`, reviewed like code, naming the published spec it
follows. Applying one to a contract replaces the contract's endpoints, field mappings and
response rules with the preset's; ops then add the secrets it names and their own URLs and field
choices. A contract that cannot deliver yet (a secret missing) is paused until it can.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from buyers.delivery_checks import delivery_checks_deferred
from buyers.models import (
    Contract,
    ContractStatus,
    DeliveryEndpoint,
    DeliveryMethod,
    FieldMapping,
    PriceModel,
    ResponseRule,
)
from buyers.readiness import contract_delivery_problems
from buyers.services import contract_pause

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

_PRESET_KEYS = frozenset(
    {"slug", "name", "spec", "description", "price_model", "vertical", "secrets"}
    | {"endpoints", "mappings", "response_rules"}
)
_PARTS = (
    ("endpoints", DeliveryEndpoint),
    ("mappings", FieldMapping),
    ("response_rules", ResponseRule),
)


class PresetError(ValueError):
    """A preset that cannot be read or applied; the message says which and why."""


@dataclass(frozen=True)
class SecretNeed:
    name: str
    help: str


@dataclass(frozen=True)
class Preset:
    slug: str
    name: str
    spec: str
    description: str
    price_model: str
    # The kind of vertical its templates read the fields of (the demo's "auto" or "solar").
    vertical: str
    secrets: tuple[SecretNeed, ...]
    # Rows of each contract part, as the TOML gives them: {"endpoints": (row, ...), ...}.
    parts: dict[str, tuple[dict[str, Any], ...]]


def _read(path: Path) -> Preset:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PresetError(f"{path.name}: {exc}") from None
    unknown = set(data) - _PRESET_KEYS
    if unknown:
        raise PresetError(f"{path.name}: unknown keys {', '.join(sorted(unknown))}.")
    missing = {"slug", "name", "spec", "price_model"} - set(data)
    if missing:
        raise PresetError(f"{path.name}: missing {', '.join(sorted(missing))}.")
    if data["slug"] != path.stem:
        raise PresetError(f"{path.name}: its slug must be its file name, {path.stem!r}.")
    if data["price_model"] not in PriceModel.values:
        raise PresetError(f"{path.name}: price_model is one of {', '.join(PriceModel.values)}.")
    return Preset(
        slug=data["slug"],
        name=data["name"],
        spec=data["spec"],
        description=data.get("description", "").strip(),
        price_model=data["price_model"],
        vertical=data.get("vertical", ""),
        secrets=tuple(
            SecretNeed(name=s["name"], help=s.get("help", "")) for s in data.get("secrets", [])
        ),
        parts={name: tuple(data.get(name, [])) for name, _ in _PARTS},
    )


@cache
def presets() -> dict[str, Preset]:
    """Every preset of the catalogue by slug, read once per process."""
    found = (_read(path) for path in sorted(PRESETS_DIR.glob("*.toml")))
    return {preset.slug: preset for preset in found}


def preset_choices() -> list[tuple[str, str]]:
    return [(slug, preset.name) for slug, preset in sorted(presets().items())]


@dataclass(frozen=True)
class PresetApplied:
    preset: Preset
    # Why the contract cannot deliver yet (it was paused for it), in words for ops.
    problems: list[str]


def preset_apply(*, contract: Contract, slug: str) -> PresetApplied:
    """Replace the contract's delivery (endpoints, mappings, response rules) by the preset's.

    The contract becomes a buyer-API contract with the preset's price model; a fixed-price
    preset keeps the contract's price, which must be set. Every row is checked by its model's
    own validation: a preset that does not pass raises PresetError and changes nothing, but for
    templates that read fields this vertical does not have, which are saved for ops to fit. A
    live contract is paused, saying what is left (a secret to add, a template to fit) and that
    the buyer's URLs are to be checked: a preset's URLs are placeholders.
    """
    preset = presets().get(slug)
    if preset is None:
        raise PresetError(f"There is no preset {slug!r}.")
    if preset.price_model == PriceModel.FIXED and contract.fixed_price is None:
        raise PresetError(f"{preset.name} posts at a fixed price: set the contract's price first.")
    with transaction.atomic():
        contract.price_model = preset.price_model
        contract.delivery_method = DeliveryMethod.HTTP
        contract.preset = preset.slug
        try:
            contract.full_clean()
        except ValidationError as exc:
            raise PresetError(_words(exc)) from None
        contract.save()
        with delivery_checks_deferred():
            for name, model in _PARTS:
                getattr(contract, name).all().delete()
                for number, row in enumerate(preset.parts[name], start=1):
                    try:
                        part = model(contract=contract, **row)
                        part.full_clean()
                    except (ValidationError, TypeError) as exc:
                        raise PresetError(
                            f"{preset.name}: {name} row {number}: {_words(exc)}"
                        ) from None
                    part.save()
        # Templates naming fields this vertical lacks are saved, and listed here to be fitted.
        problems = contract_delivery_problems(contract)
        # Never live on a preset's placeholder URLs: ops check the buyer's URLs, then resume.
        if contract.status == ContractStatus.ACTIVE:
            finish = " ".join([*problems, "Check the buyer's URLs and fields, then resume."])
            contract_pause(
                contract=contract, reason=f"Set up from the preset {preset.name}; {finish}"
            )
    return PresetApplied(preset=preset, problems=problems)


def _words(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)
