"""The admin's form of a team."""

from __future__ import annotations

from typing import Any

from django import forms

from config.admin_display import StoredWebhookFormMixin, webhook_url_field
from teams.models import Team


class TeamForm(StoredWebhookFormMixin, forms.ModelForm):
    """A team; its Slack webhook URL is a secret, typed in and never shown back.

    Blank keeps the stored URL; "remove" drops it.
    """

    webhook_help = "The URL Slack gives for an incoming webhook of the team's channel"

    slack_webhook_url = webhook_url_field()
    remove_slack_webhook = forms.BooleanField(
        label="Remove the Slack webhook", required=False, help_text="Stop posting to Slack."
    )

    class Meta:
        model = Team
        fields = (
            "name",
            "weighted_by_capacity",
            "existing_owner_days",
            "claim_timeout_minutes",
            "when_nobody_available",
            "notify_by_email",
            "slack_webhook_url",
            "acknowledge_consumer",
            "acknowledgement_text",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        removed = cleaned.get("remove_slack_webhook")
        cleaned["slack_webhook_url"] = "" if removed else self.webhook_typed_or_stored(cleaned)
        return cleaned
