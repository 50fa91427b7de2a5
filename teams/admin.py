"""The admin of internal sales teams: teams and members, assignments, and their messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from config.admin_display import (
    LeadLinkMixin,
    MaskedSecretMixin,
    ReadOnlyAdminMixin,
    SecretFormMixin,
    admin_link,
    plural,
    pretty_json,
    search_by_lead_or,
)
from config.admin_pii import MaskedLookupsMixin
from config.masking import webhook_display
from config.time_zones import TimeZoneSelectAdminMixin
from teams.forms import TeamForm
from teams.models import Assignment, AssignmentStatus, Team, TeamMember, TeamNotification
from teams.selectors import TeamDay, team_days, team_members_now
from teams.services import assignments_reassign_now


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = round(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TeamMemberInline(TimeZoneSelectAdminMixin, admin.TabularInline):
    model = TeamMember
    extra = 0
    fields = (
        "position",
        "name",
        "user",
        "email",
        "slack_user_id",
        "active",
        "away",
        "time_zone",
        "working_hours",
        "daily_quota",
        "capacity",
    )
    raw_id_fields = ("user",)


@admin.register(Team)
class TeamAdmin(SecretFormMixin, MaskedSecretMixin, SimpleHistoryAdmin):
    form = TeamForm
    secret_field, secret_display = "slack_webhook_url", "slack_webhook_display"
    list_display = (
        "name",
        "active_members",
        "assigned_today",
        "claimed_today",
        "median_to_claim",
        "queued_now",
        "awaiting_claim",
        "weighted_by_capacity",
        "claim_timeout_minutes",
    )
    list_filter = ("weighted_by_capacity", "when_nobody_available")
    search_fields = ("name",)
    readonly_fields = ("members_now", "created_at", "updated_at")
    inlines = (TeamMemberInline,)
    fieldsets = (
        (None, {"fields": ("name",)}),
        (
            "Assignment: the existing owner first, then round robin among the members in "
            "their hours and under their quota",
            {
                "fields": (
                    "weighted_by_capacity",
                    "existing_owner_days",
                    "claim_timeout_minutes",
                    "when_nobody_available",
                )
            },
        ),
        (
            "Notifying the assigned member",
            {"fields": ("notify_by_email", "slack_webhook_url", "remove_slack_webhook")},
        ),
        (
            "Acknowledging the consumer",
            {"fields": ("acknowledge_consumer", "acknowledgement_text")},
        ),
        ("Members now (saved state)", {"fields": ("members_now",)}),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return (
            super()
            .get_queryset(request)
            .annotate(active_count=Count("members", filter=Q(members__active=True)))
        )

    def changelist_view(self, request: HttpRequest, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # The page's rows, loaded once here: the template renders these same objects.
            teams = list(changelist.result_list)
            days = team_days([team.pk for team in teams])
            for team in teams:
                team.day = days[team.pk]
        return response

    def _day(self, obj: Team) -> TeamDay:
        day = getattr(obj, "day", None)
        return day if day is not None else team_days([obj.pk])[obj.pk]

    @admin.display(description="Active members", ordering="active_count")
    def active_members(self, obj: Team) -> int:
        return getattr(obj, "active_count", 0)

    @admin.display(description="Assigned today (UTC)")
    def assigned_today(self, obj: Team) -> int:
        return self._day(obj).assigned

    @admin.display(description="Claimed")
    def claimed_today(self, obj: Team) -> int:
        return self._day(obj).claimed

    @admin.display(description="Median time to claim")
    def median_to_claim(self, obj: Team) -> str:
        return _duration(self._day(obj).median_to_claim)

    @admin.display(description="Queued now")
    def queued_now(self, obj: Team) -> int:
        return self._day(obj).queued

    @admin.display(description="Awaiting a claim")
    def awaiting_claim(self, obj: Team) -> int:
        return self._day(obj).awaiting_claim

    @admin.display(description="Slack incoming webhook")
    def slack_webhook_display(self, obj: Team) -> str:
        return webhook_display(obj.slack_webhook_url) if obj.slack_webhook_url else ""

    @admin.display(description="Members now")
    def members_now(self, obj: Team) -> str:
        if obj.pk is None:
            return "-"
        rows = [
            (
                admin_link(state.member, state.member.display_name),
                "✔ available" if not state.unavailable else f"✘ {state.unavailable}",
                f"{state.next_available:%a %Y-%m-%d %H:%M} {state.member.time_zone}"
                if state.next_available is not None and state.unavailable
                else "-",
                f"{state.assigned_today} / {state.member.daily_quota}"
                if state.member.daily_quota is not None
                else f"{state.assigned_today} (no quota)",
                state.member.capacity if obj.weighted_by_capacity else "equal share",
            )
            for state in team_members_now(obj)
        ]
        if not rows:
            return "No members yet: add them below."
        return format_html(
            "<table><thead><tr><th>Member</th><th>Now</th><th>Next available</th>"
            "<th>Today (their day) / quota</th><th>Capacity</th></tr></thead><tbody>{}</tbody>"
            "</table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
            ),
        )


@admin.register(TeamMember)
class TeamMemberAdmin(TimeZoneSelectAdminMixin, SimpleHistoryAdmin):
    list_display = (
        "__str__",
        "team",
        "active",
        "away",
        "time_zone",
        "working_hours",
        "daily_quota",
        "capacity",
    )
    list_filter = ("team", "active", "away")
    search_fields = ("name", "email", "user__username", "user__email", "team__name")
    list_select_related = ("team", "user")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at", "updated_at")
    actions = ("mark_away", "mark_back")

    def _set_away(self, request: HttpRequest, queryset: QuerySet[TeamMember], away: bool) -> int:
        changed = 0
        for member in queryset.filter(away=not away):
            member.away = away
            member.save(update_fields=["away", "updated_at"])  # a history row, with who
            changed += 1
        return changed

    @admin.action(description="Mark away (no leads until back)", permissions=["change"])
    def mark_away(self, request: HttpRequest, queryset: QuerySet[TeamMember]) -> None:
        changed = self._set_away(request, queryset, True)
        self.message_user(request, f"{plural(changed, 'member')} marked away.")

    @admin.action(description="Mark back (leads again)", permissions=["change"])
    def mark_back(self, request: HttpRequest, queryset: QuerySet[TeamMember]) -> None:
        changed = self._set_away(request, queryset, False)
        self.message_user(request, f"{plural(changed, 'member')} back.")


class AssignmentNotificationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TeamNotification
    extra = 0
    fields = ("created_at", "purpose", "channel", "recipient", "status", "attempts", "error")
    readonly_fields = fields
    show_change_link = True


@admin.register(Assignment)
class AssignmentAdmin(MaskedLookupsMixin, LeadLinkMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "lead_link",
        "team",
        "member",
        "status",
        "reason",
        "assigned_at",
        "due_by",
        "claimed_at",
        "time_to_claim_display",
    )
    list_filter = ("status", "reason", "team")
    # Informational: get_search_results below makes exact, indexed lookups only.
    search_fields = ("lead__id",)
    search_help_text = "A lead id or an assignment number."
    list_select_related = ("team", "member__user")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "lead",
        "team",
        "contract",
        "member",
        "previous",
        "status",
        "reason",
        "note",
        "created_at",
        "assigned_at",
        "due_by",
        "claimed_at",
        "closed_at",
        "time_to_claim_display",
        "claim_page",
    )
    readonly_fields = fields
    inlines = (AssignmentNotificationInline,)
    actions = ("reassign_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Assignment], search_term: str
    ) -> tuple[QuerySet[Assignment], bool]:
        return search_by_lead_or(queryset, search_term), False

    @admin.display(description="Time to claim")
    def time_to_claim_display(self, obj: Assignment) -> str:
        return _duration(obj.time_to_claim)

    @admin.display(description="Claim page")
    def claim_page(self, obj: Assignment) -> str:
        if obj.status != AssignmentStatus.ASSIGNED:
            return "-"
        url = reverse("team-assignment-claim", args=[obj.pk])
        return format_html(
            '<a href="{}">Claim</a> (for the assigned member, signed in with their account)', url
        )

    @admin.action(description="Reassign now to the next available member", permissions=["change"])
    def reassign_now(self, request: HttpRequest, queryset: QuerySet[Assignment]) -> None:
        counts = assignments_reassign_now(
            assignment_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user.get_username(),
        )
        self.message_user(
            request,
            f"Reassigned {counts.reassigned}, queued {counts.queued} (nobody available now), "
            f"expired {counts.expired} (nobody left); leads not awaiting a claim were left alone.",
        )


@admin.register(TeamNotification)
class TeamNotificationAdmin(MaskedLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "purpose",
        "channel",
        "recipient",
        "status",
        "attempts",
        "response_status",
        "error",
    )
    list_filter = ("status", "purpose", "channel")
    list_select_related = ("assignment",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "assignment",
        "purpose",
        "channel",
        "recipient",
        "status",
        "attempts",
        "created_at",
        "last_attempt_at",
        "sent_at",
        "response_status",
        "error",
        "latency_ms",
        "payload_display",
        "attempt_log_display",
    )
    readonly_fields = ("payload_display", "attempt_log_display")

    @admin.display(description="Message")
    def payload_display(self, obj: TeamNotification) -> str:
        return pretty_json(obj.payload)

    @admin.display(description="Attempts")
    def attempt_log_display(self, obj: TeamNotification) -> str:
        return pretty_json(obj.attempt_log)
