"""Internal sales teams: a contract may deliver to the company's own team.

Who gets a lead is chosen by `teams/rules.py` (pure) and recorded by `teams/services.py`.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from buyers.fields import EncryptedTextField
from buyers.models import Contract, validate_time_zone
from buyers.schedule import parse_hours
from notifications.channels import MessageChannel, MessageStatus, RecordedMessage
from outbound.guard import webhook_url_refusal


class WhenNobodyAvailable(models.TextChoices):
    QUEUE = "queue", "Queue the lead; assign it when a member's hours open"
    PASS = "pass", "Pass the lead on to the next contract (the team declines it)"


# {first_name}, {team} and {when} are filled in; nothing else is read from the text.
ACKNOWLEDGEMENT_PLACEHOLDERS = ("first_name", "team", "when")
DEFAULT_ACKNOWLEDGEMENT = (
    "Hi {first_name},\n\nThank you for your request. {team} has it and will be in touch {when}.\n"
)
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
SLACK_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class Team(models.Model):
    """An internal sales team: a contract's delivery target whose members are assigned leads."""

    name = models.CharField(max_length=160, unique=True)
    weighted_by_capacity = models.BooleanField(
        default=False,
        help_text="Share leads in proportion to each member's capacity; otherwise equally.",
    )
    existing_owner_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="A consumer (same e-mail or phone) assigned to a member within this many days "
        "goes to that member again while they are available; blank: always by rotation.",
    )
    claim_timeout_minutes = models.PositiveSmallIntegerField(
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(1440)],
        help_text="A lead not claimed within this many minutes goes to the next member.",
    )
    when_nobody_available = models.CharField(
        max_length=5,
        choices=WhenNobodyAvailable.choices,
        default=WhenNobodyAvailable.QUEUE,
        help_text="When no member is in their hours and under their quota.",
    )
    notify_by_email = models.BooleanField(
        default=True, help_text="E-mail the assigned member the lead and a link to claim it."
    )
    slack_webhook_url = EncryptedTextField(
        blank=True,
        help_text="Also post it to this Slack channel's incoming webhook, mentioning the member "
        "(kept encrypted; it is a secret).",
    )
    acknowledge_consumer = models.BooleanField(
        default=False,
        help_text="E-mail the consumer at once that the team has the request, and when it will "
        "be in touch (outside hours: when the first member's hours open).",
    )
    acknowledgement_text = models.TextField(
        default=DEFAULT_ACKNOWLEDGEMENT,
        blank=True,
        help_text="The consumer's e-mail; {first_name}, {team} and {when} are filled in.",
    )
    # The weighted round robin's credit per member id: kept here, under the team's row lock.
    rotation = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["slack_webhook_url", "rotation"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.slack_webhook_url:
            refusal = webhook_url_refusal(self.slack_webhook_url)
            if refusal:
                errors["slack_webhook_url"] = refusal
        unknown = [
            name
            for name in PLACEHOLDER_RE.findall(self.acknowledgement_text or "")
            if name not in ACKNOWLEDGEMENT_PLACEHOLDERS
        ]
        if unknown:
            errors["acknowledgement_text"] = (
                f"Unknown placeholders: {', '.join('{' + n + '}' for n in unknown)}; use "
                "{first_name}, {team} and {when}."
            )
        if self.acknowledge_consumer and not (self.acknowledgement_text or "").strip():
            errors["acknowledgement_text"] = "Write the e-mail the consumer is sent."
        if errors:
            raise ValidationError(errors)


class TeamMember(models.Model):
    """A person on a team: when they work, how many leads a day, and their share."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    position = models.PositiveSmallIntegerField(
        default=0, help_text="Order in the rotation (ties go to the lower)."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="team_memberships",
        help_text="Their staff account, if any: lets them claim from the admin; gives name and "
        "e-mail where those are blank.",
    )
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField(blank=True, help_text="Where their leads are e-mailed.")
    slack_user_id = models.CharField(
        "Slack user id",
        max_length=24,
        blank=True,
        help_text="U012AB3CD: mentioned in the team's Slack message.",
    )
    active = models.BooleanField(
        default=True, help_text="Off: gets no leads (left the team, or not started)."
    )
    away = models.BooleanField(
        default=False, help_text="Opted out for now (holiday, sick, busy): gets no leads."
    )
    time_zone = models.CharField(
        max_length=64,
        default="America/New_York",
        validators=[validate_time_zone],
        help_text="Working hours and the daily quota are counted in this time zone.",
    )
    working_hours = models.CharField(
        max_length=500,
        blank=True,
        help_text="E.g. Mon-Fri 09:00-17:00, Sat 10:00-14:00 (overnight: Fri 22:00-06:00); "
        "blank: any time.",
    )
    daily_quota = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most leads a day, their day from local midnight; blank: no limit.",
    )
    capacity = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Share when the team weights by capacity: 2 gets twice the leads of 1.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["team", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity__gte=1), name="team_member_capacity_positive"
            ),
            models.UniqueConstraint(
                fields=["team", "user"],
                condition=Q(user__isnull=False),
                name="one_membership_per_user_and_team",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.user_id is not None:
            return self.user.get_full_name() or self.user.get_username()
        return f"member {self.pk}"

    @property
    def contact_email(self) -> str:
        if self.email:
            return self.email
        return self.user.email if self.user_id is not None else ""

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not self.name and self.user_id is None:
            errors["name"] = "Give a name, or choose their staff account."
        try:
            parse_hours(self.working_hours)
        except ValueError as exc:
            errors["working_hours"] = str(exc)
        if self.slack_user_id and not SLACK_USER_ID_RE.match(self.slack_user_id):
            errors["slack_user_id"] = (
                "A Slack member id looks like U012AB3CD (profile → ⋮ → Copy member ID)."
            )
        team = self.team if self.team_id is not None else None
        if team is not None and team.notify_by_email and self.active and not self.contact_email:
            errors["email"] = "The team e-mails its members their leads: give an address."
        if errors:
            raise ValidationError(errors)


class AssignmentStatus(models.TextChoices):
    QUEUED = "queued", "Queued (nobody available)"
    ASSIGNED = "assigned", "Assigned, awaiting claim"
    CLAIMED = "claimed", "Claimed"
    REASSIGNED = "reassigned", "Not claimed in time: reassigned"
    EXPIRED = "expired", "Not claimed in time: nobody left to take it"


# An assignment still in play: a lead has at most one per team.
OPEN_ASSIGNMENT_STATUSES = (
    AssignmentStatus.QUEUED,
    AssignmentStatus.ASSIGNED,
    AssignmentStatus.CLAIMED,
)


class AssignmentReason(models.TextChoices):
    ROUND_ROBIN = "round_robin", "Round robin"
    WEIGHTED = "weighted", "Weighted by capacity"
    EXISTING_OWNER = "existing_owner", "Existing owner"
    REASSIGNED = "reassigned", "Reassigned from another member"
    QUEUED = "queued_then_assigned", "Queued, then assigned when hours opened"


class Assignment(models.Model):
    """A lead given to a team: which member has it, why, and whether they claimed it.

    A reassignment closes this row (reassigned) and opens another that points back at it, so
    the chain says who had the lead when; a lead has at most one open assignment per team.
    """

    lead = models.ForeignKey(
        "leads.Lead", on_delete=models.CASCADE, related_name="team_assignments"
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="assignments")
    contract = models.ForeignKey(
        Contract,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="team_assignments",
    )
    member = models.ForeignKey(
        TeamMember,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assignments",
    )
    previous = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The assignment this one took over from.",
    )
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices)
    reason = models.CharField(max_length=20, choices=AssignmentReason.choices, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="Why this member, in words.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    due_by = models.DateTimeField(
        null=True, blank=True, help_text="Reassigned when not claimed by then."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was reassigned or expired."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["lead", "team"],
                condition=Q(status__in=OPEN_ASSIGNMENT_STATUSES),
                name="one_open_assignment_per_lead_and_team",
            ),
            models.CheckConstraint(
                condition=Q(status=AssignmentStatus.QUEUED, member__isnull=True)
                | (~Q(status=AssignmentStatus.QUEUED) & Q(member__isnull=False)),
                name="assignment_member_unless_queued",
            ),
        ]
        indexes = [
            # Quotas count a member's assignments of their day.
            models.Index(fields=["member", "assigned_at"], name="assignment_member_day"),
            # The sweeps read only the few rows awaiting a claim or an opening.
            models.Index(
                fields=["due_by"],
                condition=Q(status=AssignmentStatus.ASSIGNED),
                name="assignment_awaiting_claim",
            ),
            models.Index(
                fields=["team", "created_at"],
                condition=Q(status=AssignmentStatus.QUEUED),
                name="assignment_queued",
            ),
        ]

    def __str__(self) -> str:
        who = self.member.display_name if self.member_id is not None else "nobody yet"
        return f"Lead {self.lead_id} → {who} ({self.get_status_display()})"

    @property
    def time_to_claim(self) -> timedelta | None:
        if self.claimed_at is None or self.assigned_at is None:
            return None
        return self.claimed_at - self.assigned_at


class TeamNotificationPurpose(models.TextChoices):
    ASSIGNED = "assigned", "New lead for the member"
    ACKNOWLEDGEMENT = "acknowledgement", "Acknowledgement to the consumer"


# A team's messages are recorded and sent as the ops notifications are (notifications.channels).
TeamNotificationChannel = MessageChannel
TeamNotificationStatus = MessageStatus


class TeamNotification(RecordedMessage):
    """One message about an assignment (to the member, or the consumer) and how it went."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="notifications"
    )
    purpose = models.CharField(max_length=15, choices=TeamNotificationPurpose.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="team_notification_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} to {self.recipient}: {self.get_status_display()}"
