from __future__ import annotations

from django import forms

from reporting.models import ReturnReason


class ReturnSalesForm(forms.Form):
    """Why ops return the selected sales for their buyer."""

    reason = forms.ChoiceField(choices=ReturnReason.choices)
    note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Required for other."
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("reason") == ReturnReason.OTHER and not cleaned.get("note", "").strip():
            self.add_error("note", "Say why in a note when the reason is other.")
        return cleaned
