"""Admin forms for buyers and contracts."""

from __future__ import annotations

from typing import Any

from django import forms

from buyers.models import DeliveryEndpoint, TerritoryRule


class DeliveryEndpointForm(forms.ModelForm):
    """Edit an endpoint without ever rendering its stored secret back to the browser.

    Blank keeps the stored secret, a new value replaces it, "clear secret" removes it.
    """

    auth_secret = forms.CharField(
        label="Secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
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
            "auth_type",
            "auth_username",
            "auth_param_name",
            "auth_secret",
            "connect_timeout_ms",
            "read_timeout_ms",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored_secret = self.instance.auth_secret if self.instance.pk else ""
        # model_to_dict put the plaintext into initial; nothing that renders may see it.
        self.initial.pop("auth_secret", None)
        hint = self.instance.masked_secret if self._stored_secret else "not set"
        self.fields["auth_secret"].help_text = (
            f"Stored: {hint}. Password, token or key; kept encrypted. "
            "Leave blank to keep the stored secret."
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        typed = cleaned.get("auth_secret") or ""
        if cleaned.get("clear_secret"):
            if typed:
                self.add_error("clear_secret", "Type a new secret or clear it, not both.")
            cleaned["auth_secret"] = ""
        elif not typed:
            # Keep the stored secret. It goes back into cleaned_data so that the instance carries
            # it when the model's clean() checks that this auth type has a secret.
            cleaned["auth_secret"] = self._stored_secret
        return cleaned


class TerritoryRuleForm(forms.ModelForm):
    class Meta:
        model = TerritoryRule
        fields = ("contract", "mode", "kind", "values", "radius_miles")
        widgets = {
            # ZIP lists of thousands are pasted here; the model normalises them on clean.
            "values": forms.Textarea(attrs={"rows": 3, "cols": 50}),
        }


class PauseContractsForm(forms.Form):
    reason = forms.CharField(
        max_length=255,
        help_text="Shown on each contract while it is paused, e.g. 'endpoint returning 500s'.",
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
    )
