"""Admin forms for buyers and contracts."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from buyers.fields import mask
from buyers.models import (
    NUMERIC_OPERATORS,
    Contract,
    ContractSecret,
    CriterionOperator,
    DeliveryEndpoint,
    FieldCriterion,
    SourceFilter,
    TerritoryKind,
    TerritoryRule,
    split_values,
)
from config.admin_display import StoredSecretFormMixin, secret_input_field
from leads.scoring import SCORE_FIELD, TIER_FIELD, Tier
from leads.states import parse_states, state_code

CSV_MAX_BYTES = 2 * 1024 * 1024
CSV_DELIMITERS = (",", ";", "\t")
ZIP_COLUMNS = frozenset({"zip", "zipcode", "zip_code", "postal_code"})
STATE_COLUMNS = frozenset({"state", "code", "state_code"})
# Excel reads ZIP codes as numbers and drops their leading zeros: 02134 comes back as 2134.
UNPADDED_ZIP_RE = re.compile(r"[0-9]{3,5}")
SHOWN_BAD_VALUES = 10


class ContractForm(forms.ModelForm):
    class Meta:
        model = Contract
        fields = (
            "buyer",
            "vertical",
            "name",
            "price_model",
            "fixed_price",
            "floor_price",
            "priority",
            "weight",
            "exclusive",
            "source_filter",
            "sources",
            "accepts_test_leads",
            "consent_must_name_buyer",
            "requires_consent_certificate",
            "refuse_bought_within_days",
            "refuse_bought_scope",
            "min_lead_age_minutes",
            "max_lead_age_minutes",
            "bid_valid_seconds",
            "delivery_method",
            "delivery_emails",
            "team",
            "breaker_failures",
            "latency_limit_ms",
            "latency_strikes",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Read by the inlines of the same page (ServedVersionsFormSet): the versions the contract
        # serves follow the sources as submitted, not as stored.
        self.instance.submitted_sources = cleaned.get("sources")
        source_filter = cleaned.get("source_filter")
        if source_filter is None or "sources" not in cleaned:
            return cleaned
        problem = source_filter_problem(source_filter, listed=bool(cleaned["sources"]))
        if problem is not None:
            self.add_error(*problem)
        return cleaned


def source_filter_problem(source_filter: str, *, listed: bool) -> tuple[str, str] | None:
    """Return (form field, message) when a contract's source filter and its listed sources
    disagree. The model cannot check this: its M2M rows are written after the contract."""
    if source_filter == SourceFilter.ALL and listed:
        return "source_filter", "Choose allow or block for the listed sources."
    if source_filter == SourceFilter.ALLOW and not listed:
        return "sources", "List the sources to allow."
    if source_filter == SourceFilter.BLOCK and not listed:
        return "sources", "List the sources to block."
    return None


# What a criterion on the lead's tier may say: it is a word, not a number ("tier in hot, warm").
TIER_OPERATORS = frozenset(
    {
        CriterionOperator.EQ,
        CriterionOperator.NE,
        CriterionOperator.IN,
        CriterionOperator.NOT_IN,
        CriterionOperator.EXISTS,
        CriterionOperator.MISSING,
    }
)
CRITERION_FIELD_HELP = (
    "A lead field or enrichment (city, county, time_zone), or the lead's score (a number, 0-100) "
    "or tier (hot, warm, qualified, cold), e.g. tier is one of hot, warm; score >= 70."
)


def score_criterion_problem(field: str, operator: str, value: str) -> tuple[str, str] | None:
    """Return (form field, message) when a criterion on the score or tier cannot hold as meant."""
    values = [v.strip() for v in (value or "").split(",") if v.strip()]
    if field == TIER_FIELD:
        if operator not in TIER_OPERATORS:
            return "operator", "A tier is a word: use equals, is one of, is none of, or present."
        unknown = [v for v in values if v.casefold() not in Tier.values]
        if unknown:
            return "value", f"{', '.join(unknown)}: not a tier; tiers are {', '.join(Tier.values)}."
    if field == SCORE_FIELD:
        if operator == CriterionOperator.REGEX:
            return "operator", "A score is a number from 0 to 100: compare it, e.g. >= 70."
        if operator in NUMERIC_OPERATORS or operator in TIER_OPERATORS:
            for v in values:
                try:
                    number = Decimal(v)
                except ArithmeticError:
                    return "value", f"{v}: a score is a number from 0 to 100."
                if not 0 <= number <= 100:
                    return "value", f"{v}: a score is from 0 to 100."
    return None


class FieldCriterionForm(forms.ModelForm):
    """A contract's field criterion; the lead's score and tier are checked as such."""

    class Meta:
        model = FieldCriterion
        fields = ("field", "operator", "value")
        help_texts = {"field": CRITERION_FIELD_HELP}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        problem = score_criterion_problem(
            (cleaned.get("field") or "").strip(),
            cleaned.get("operator") or "",
            cleaned.get("value") or "",
        )
        if problem is not None:
            self.add_error(*problem)
        return cleaned


class DeliveryEndpointForm(StoredSecretFormMixin, forms.ModelForm):
    """Edit an endpoint without ever rendering its stored secret back to the browser.

    Blank keeps the stored secret, a new value replaces it, "clear secret" removes it.
    """

    stored_field = "auth_secret"
    stored_mask = staticmethod(mask)
    stored_help = "Password, token or key; kept encrypted. Leave blank to keep the stored secret."

    auth_secret = secret_input_field("Secret")
    clear_secret = forms.BooleanField(
        label="Clear secret", required=False, help_text="Remove the stored secret."
    )

    class Meta:
        model = DeliveryEndpoint
        fields = (
            "contract",
            "kind",
            "url",
            "method",
            "body_format",
            "headers",
            "query",
            "body_template",
            "auth_type",
            "auth_username",
            "auth_param_name",
            "auth_secret",
            "connect_timeout_ms",
            "read_timeout_ms",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("clear_secret"):
            if cleaned.get("auth_secret"):
                self.add_error("clear_secret", "Type a new secret or clear it, not both.")
            cleaned["auth_secret"] = ""
        else:
            # A blank field keeps the stored secret. It goes back into cleaned_data so that the
            # instance carries it when the model's clean() checks that this auth type has a secret.
            cleaned["auth_secret"] = self.typed_or_stored(cleaned)
        return cleaned


class ContractSecretForm(StoredSecretFormMixin, forms.ModelForm):
    """Edit a named secret without ever rendering its value back: blank keeps the stored one."""

    stored_field = "value"
    stored_mask = staticmethod(mask)

    value = secret_input_field("Value")

    class Meta:
        model = ContractSecret
        fields = ("contract", "name", "value")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # The stored value goes back so that the model's clean() sees the secret it keeps.
        cleaned["value"] = self.typed_or_stored(cleaned)
        return cleaned


class CsvError(ValueError):
    """The uploaded file cannot be read as a list of territory values."""


def normalise_territory_value(kind: str, raw: str) -> str | None:
    """Return the value as stored (a state code or a 5-digit ZIP), or None if it is not one."""
    if kind == TerritoryKind.STATES:
        return state_code(raw)
    value = raw.strip().upper()
    if UNPADDED_ZIP_RE.fullmatch(value):
        return value.zfill(5)
    return None


def _column_index(header: list[str], names: frozenset[str]) -> int | None:
    for index, cell in enumerate(header):
        if re.sub(r"[\s-]+", "_", cell.strip().lower()) in names:
            return index
    return None


def territory_values_from_csv(data: bytes, *, kind: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Read the values of a territory rule from an uploaded CSV file.

    Take the column named zip, zipcode, zip_code or postal_code (state, code or state_code for
    states) when the first row is such a header, else the first column; a file of one row without
    a header is a list, every cell a value. Return the values in file order and the (line number,
    cell) of each cell that is not a valid value.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(
            f"The file is not UTF-8 text (byte {exc.start + 1}): save it as “CSV UTF-8”."
        ) from None
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(CSV_DELIMITERS, key=first_line.count) if first_line else ","
    if delimiter not in first_line:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise CsvError(f"Line {reader.line_num} is not valid CSV: {exc}.") from None
    if not rows:
        return [], []

    is_states = kind == TerritoryKind.STATES
    column = _column_index(rows[0][1], STATE_COLUMNS if is_states else ZIP_COLUMNS)
    if column is not None:
        cells = [(line, row[column] if column < len(row) else "") for line, row in rows[1:]]
    elif not is_states and re.search(r"[A-Za-z]", rows[0][1][0]):
        raise CsvError(
            f"Line {rows[0][0]} looks like a header, but names no column zip, zipcode, zip_code "
            "or postal_code."
        )
    elif len(rows) == 1:
        # "02134,02135,02136" on one line is a list, not a first column of one cell.
        cells = [(rows[0][0], cell) for cell in rows[0][1]]
    else:
        cells = [(line, row[0]) for line, row in rows]

    values: list[str] = []
    bad: list[tuple[int, str]] = []
    for line, cell in cells:
        if not cell.strip():
            continue
        value = normalise_territory_value(kind, cell)
        if value is None:
            bad.append((line, cell.strip()))
        else:
            values.append(value)
    return values, bad


class TerritoryRuleForm(forms.ModelForm):
    upload = forms.FileField(
        label="or upload a CSV",
        required=False,
        widget=forms.FileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
        help_text="A column named zip (state for states) or one value per line, up to 2 MB; "
        "added to the values typed in.",
    )

    class Meta:
        model = TerritoryRule
        fields = ("contract", "mode", "kind", "values", "upload", "radius_miles")
        widgets = {
            # ZIP lists of thousands are pasted here; the model normalises them on clean.
            "values": forms.Textarea(attrs={"rows": 3, "cols": 50}),
        }
        help_texts = {
            "values": "States by code or name (IL, Illinois, New York) or 5-digit ZIP codes, "
            "separated by commas, spaces or new lines.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Values may come from the file alone; the model's clean() still refuses an empty rule.
        self.fields["values"].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload: UploadedFile | None = cleaned.get("upload")
        kind = cleaned.get("kind")
        if upload is None or not kind:
            return cleaned
        if upload.size is not None and upload.size > CSV_MAX_BYTES:
            self.add_error("upload", "The file is larger than 2 MB.")
            return cleaned
        upload.seek(0)
        try:
            values, bad = territory_values_from_csv(upload.read(), kind=kind)
        except CsvError as exc:
            self.add_error("upload", str(exc))
            return cleaned
        if bad:
            noun = "US states (codes or names)" if kind == TerritoryKind.STATES else "ZIP codes"
            shown = ", ".join(f"line {line}: {cell}" for line, cell in bad[:SHOWN_BAD_VALUES])
            more = f" and {len(bad) - SHOWN_BAD_VALUES} more" if len(bad) > SHOWN_BAD_VALUES else ""
            self.add_error("upload", f"Not {noun}: {shown}{more}.")
            return cleaned
        if not values:
            self.add_error("upload", "The file holds no values.")
            return cleaned
        text = cleaned.get("values", "")
        if kind == TerritoryKind.STATES:
            codes, unread = parse_states(text)
            # What names no state stays as typed, for the model to name it in its error.
            typed = [*codes, *unread]
        else:
            typed = [v.upper() for v in split_values(text)]
        merged = "\n".join(dict.fromkeys([*typed, *values]))
        cleaned["values"] = merged
        # A file input comes back empty when the page is shown again for an error elsewhere:
        # the uploaded values go into the text area, or the next save would drop them unseen.
        data = self.data.copy()
        data[self.add_prefix("values")] = merged
        self.data = data
        return cleaned


# --- Contract page tools ---------------------------------------------------------------------


class ContractTestForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[("ping", "Ping"), ("post", "Post")],
        initial="ping",
        widget=forms.RadioSelect,
    )
    lead = forms.UUIDField(
        required=False,
        label="Lead id",
        help_text="A lead of the contract's vertical; blank for a sample lead made up from the "
        "vertical's fields. A real lead's post carries its personal data to the buyer.",
        widget=forms.TextInput(attrs={"size": 40}),
    )


class ContractAnswerForm(forms.Form):
    """A buyer's answer to read by the contract's rules: 'Try this answer'."""

    kind = forms.ChoiceField(
        choices=[("ping", "Ping"), ("post", "Post")],
        initial="post",
        widget=forms.RadioSelect,
        label="An answer to a",
    )
    status = forms.IntegerField(
        initial=200,
        min_value=100,
        max_value=599,
        label="HTTP status",
        error_messages={
            "invalid": "An HTTP status is a number from 100 to 599.",
            "min_value": "An HTTP status is a number from 100 to 599.",
            "max_value": "An HTTP status is a number from 100 to 599.",
        },
        widget=forms.NumberInput(attrs={"style": "width: 6em"}),
    )
    body = forms.CharField(
        required=False,
        strip=False,
        label="Answer",
        help_text="The body of the buyer's answer, as the buyer's spec shows it or as it came.",
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100, "spellcheck": "false"}),
    )


class ContractReasonForm(forms.Form):
    """Why a contract is paused or resumed (its page's tools and the list's pause action)."""

    reason = forms.CharField(
        max_length=255,
        help_text="Kept in the contract's history (a pause's also shows on the contract while it "
        "is paused), e.g. 'endpoint returning 500s'.",
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
    )


class ContractPresetForm(forms.Form):
    preset = forms.ChoiceField(
        help_text="Replaces the contract's endpoints, field mappings and response rules."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from buyers.presets import preset_choices

        super().__init__(*args, **kwargs)
        self.fields["preset"].choices = [("", "---------"), *preset_choices()]


class ContractCloneForm(forms.Form):
    name = forms.CharField(max_length=160)
    buyer = forms.ModelChoiceField(queryset=None, help_text="The buyer the copy is for.")
    vertical = forms.ModelChoiceField(queryset=None, help_text="The vertical the copy buys in.")

    def __init__(self, *args: Any, contract: Contract, **kwargs: Any) -> None:
        from buyers.models import Buyer
        from leads.models import Vertical

        kwargs.setdefault(
            "initial",
            {
                "name": f"{contract.name} (copy)"[:160],
                "buyer": contract.buyer_id,
                "vertical": contract.vertical_id,
            },
        )
        super().__init__(*args, **kwargs)
        self.fields["buyer"].queryset = Buyer.objects.order_by("company")
        self.fields["vertical"].queryset = Vertical.objects.order_by("name")


class ContractZipsForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[("include", "Only these ZIP codes"), ("exclude", "Every ZIP code except these")],
        initial="include",
        widget=forms.RadioSelect,
    )
    replace = forms.BooleanField(
        required=False,
        label="Replace the current list",
        help_text="Unticked, the codes are added to the contract's ZIP list of that kind.",
    )
    values = forms.CharField(
        required=False,
        label="Paste ZIP codes",
        help_text="Separated by commas, spaces or new lines.",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
    )
    upload = forms.FileField(
        required=False,
        label="or upload a CSV",
        help_text="A column named zip, zipcode, zip_code or postal_code, or one code per line; "
        "up to 2 MB.",
        widget=forms.FileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        zips: list[str] = []
        bad: list[str] = []
        for raw in split_values(cleaned.get("values") or ""):
            value = normalise_territory_value(TerritoryKind.ZIPS, raw)
            if value is None:
                bad.append(raw)
            else:
                zips.append(value)
        if bad:
            shown = ", ".join(bad[:SHOWN_BAD_VALUES])
            more = f" and {len(bad) - SHOWN_BAD_VALUES} more" if len(bad) > SHOWN_BAD_VALUES else ""
            self.add_error("values", f"Not ZIP codes: {shown}{more}.")
        upload: UploadedFile | None = cleaned.get("upload")
        if upload is not None:
            if upload.size is not None and upload.size > CSV_MAX_BYTES:
                self.add_error("upload", "The file is larger than 2 MB.")
            else:
                try:
                    values, bad_cells = territory_values_from_csv(
                        upload.read(), kind=TerritoryKind.ZIPS
                    )
                except CsvError as exc:
                    self.add_error("upload", str(exc))
                else:
                    if bad_cells:
                        shown = ", ".join(
                            f"line {line}: {cell}" for line, cell in bad_cells[:SHOWN_BAD_VALUES]
                        )
                        self.add_error("upload", f"Not ZIP codes: {shown}.")
                    zips.extend(values)
        if not self.errors and not zips:
            raise forms.ValidationError("Paste ZIP codes or upload a file of them.")
        cleaned["zips"] = list(dict.fromkeys(zips))
        return cleaned
