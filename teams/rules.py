"""Which member of an internal sales team gets a lead, now (pure: plain data in, a choice out).

The order, as `choose_member` applies it:

1. **Who may have a lead now**: an active member, not away (opted out), inside their working
   hours on their own clock (`buyers/schedule.py`, correct across DST), under their daily quota
   counted from their own local midnight, and not excluded (a reassignment leaves out everyone
   who already let this lead lapse).
2. **The existing owner**: a consumer (same e-mail or phone) assigned to a member before goes to
   that member again while they may have a lead now; otherwise the rotation decides and the note
   says why the owner was passed over.
3. **Weighted round robin** among the rest: each member's share is their capacity (or 1 each
   when the team does not weight), and a deterministic credit scheme keeps every member within
   one lead of their exact share at every moment while the set of available members stays the
   same: after n leads a member of weight w out of W has between n·w/W − 1 and n·w/W + 1
   (strictly). It is Tijdeman's solution of the chairman assignment problem (1980): every member
   earns their weight in credit per lead, a member whose credit reaches (W / (2k − 2)) may be
   chosen, the one whose lower bound would be breached first is, and the chosen one pays W. With
   equal weights it is the plain rotation A, B, C, A, B, C. The smooth weighted round robin
   (nginx) is close but can drift a little past one lead.
4. **Nobody**: the lead is queued (or passed on, as the team says), and `next_available` tells
   when the first member's hours open.

A member who is unavailable for a while earns no credit meanwhile, so they return to their
share, not to a burst of catch-up leads; and a lead a member takes while the others are out
counts as their turn (after A, B, B, B with A at quota, A is next when back). The rotation's
state is one whole-number credit per member, stored on the team.

How this compares with established CRMs' documented behaviour:

- Salesforce Omni-Channel routes work only to agents whose presence status is available, up to
  each agent's capacity; "most available" and capacity weights share work in proportion to
  capacity; work pushed to an agent who does not accept it within the push timeout goes back
  and is routed to the next agent. Here: unavailable members (inactive, away, outside hours)
  receive nothing, the daily quota is a hard capacity, shares follow capacity within one lead,
  and an unclaimed lead is reassigned after the team's claim timeout, never to the member who
  let it lapse.
- HubSpot's rotate-leads workflow action rotates among the chosen users in turn and can skip
  records that already have an owner; users unavailable (out of office) are skipped. Here:
  the rotation is exact even under concurrent leads (its state is one row, locked), existing
  owners keep their consumers while available, and away members are skipped.
- Neither sends a lead to a user who cannot take it; neither lets a user exceed the capacity
  set for them. Both hold here by construction and are tested under concurrency.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from buyers.caps import period_bounds
from buyers.models import CapPeriod
from buyers.schedule import Schedule, describe_closed, is_open, next_opening, parse_hours
from notifications.channels import slack_escape
from teams.models import AssignmentReason

SLACK_FIELDS_MAX = 10


@dataclass(frozen=True, slots=True)
class Member:
    """A team member as the selection sees them, with what they were assigned today."""

    id: int
    name: str
    schedule: Schedule
    active: bool = True
    away: bool = False
    daily_quota: int | None = None
    assigned_today: int = 0
    capacity: int = 1

    @classmethod
    def build(cls, *, time_zone: str, working_hours: str, **values: Any) -> Member:
        """Return the member with their weekly hours read from text (see parse_hours)."""
        return cls(schedule=Schedule.build(time_zone, parse_hours(working_hours)), **values)


@dataclass(frozen=True)
class Choice:
    """Who gets the lead (None: nobody now), why, and the rotation's credits afterwards."""

    member_id: int | None
    reason: str
    note: str
    credits: dict[int, int] = field(default_factory=dict)


def unavailable_reason(member: Member, now: datetime) -> str:
    """Say why the member may not have a lead at `now` ('' when they may)."""
    if not member.active:
        return "inactive"
    if member.away:
        return "away"
    if member.daily_quota is not None and member.assigned_today >= member.daily_quota:
        return f"daily quota {member.assigned_today}/{member.daily_quota} reached"
    if not is_open(member.schedule, now):
        return describe_closed(member.schedule, now).replace("outside schedule", "outside hours")
    return ""


def next_available(member: Member, now: datetime) -> datetime | None:
    """Return when the member may next have a lead (now, if now), or None if not foreseeable.

    Inactive and away members come back only by hand; a member at their quota from their next
    local midnight; others at their next opening (within two weeks).
    """
    if not member.active or member.away:
        return None
    start = now
    if member.daily_quota is not None and member.assigned_today >= member.daily_quota:
        if member.daily_quota == 0:
            return None
        start = period_bounds(CapPeriod.DAY, now, member.schedule.tz)[1]
    return next_opening(member.schedule, start)


def first_available(members: Sequence[Member], now: datetime) -> datetime | None:
    """Return the earliest moment any of the members may have a lead, or None."""
    times = [t for t in (next_available(m, now) for m in members) if t is not None]
    return min(times, default=None)


def rotate(weights: Sequence[tuple[int, int]], credits: Mapping[int, int]) -> tuple[int, dict]:
    """Choose from (member id, weight) pairs by their credits; return the id and new credits.

    Deterministic: ties go to the earlier pair. Credits are whole numbers, so the state can be
    stored and compared exactly.
    """
    if not weights:
        raise ValueError("nobody to choose from")
    total = sum(weight for _, weight in weights)
    count = len(weights)
    new = _centred(credits, weights)
    for member_id, weight in weights:
        new[member_id] += weight
    if count == 1:
        chosen = weights[0][0]
    else:
        spread = 2 * count - 2
        eligible = [(i, w) for i, w in weights if new[i] * spread >= total]
        # Earliest deadline: whose count would first fall a whole lead behind its share.
        chosen = min(
            eligible,
            key=lambda pair: Fraction((spread - 1) * total - spread * new[pair[0]], pair[1]),
        )[0]
    new[chosen] -= total
    return chosen, new


def _centred(credits: Mapping[int, int], weights: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Return the credits with those of the members in play summing to zero.

    While the same members stay available their credits already do (each lead adds the total
    and takes it back). When the set changed, what was earned in another set is shifted in
    proportion to weight, whole numbers, the remainder to the earliest: nobody comes back to a
    burst of leads, and a lead taken alone (the others out) is not owed to them again later.
    """
    new = {key: int(value) for key, value in credits.items()}
    for member_id, _ in weights:
        new.setdefault(member_id, 0)
    surplus = sum(new[member_id] for member_id, _ in weights)
    if surplus:
        total = sum(weight for _, weight in weights)
        shifts = [(-surplus * weight) // total for _, weight in weights]
        for index in range(-surplus - sum(shifts)):
            shifts[index] += 1
        for (member_id, _), shift in zip(weights, shifts, strict=True):
            new[member_id] += shift
    return new


def choose_member(
    members: Sequence[Member],
    *,
    now: datetime,
    credits: Mapping[int, int],
    weighted: bool,
    owner_id: int | None = None,
    exclude: Collection[int] = (),
) -> Choice:
    """Choose who of the team gets a lead at `now`: the existing owner, else the rotation.

    `members` in rotation order; `credits` the rotation's state (member id → credit); `exclude`
    the members this lead must not go to again. Return a Choice with member_id None when nobody
    may have it now, its note naming why each member may not.
    """
    credits = {m.id: int(credits.get(m.id, 0)) for m in members}
    why_not = {
        m.id: "had it already" if m.id in exclude else unavailable_reason(m, now) for m in members
    }
    available = [m for m in members if not why_not[m.id]]
    by_id = {m.id: m for m in members}
    owner = by_id.get(owner_id) if owner_id is not None else None
    if owner is not None and not why_not[owner.id]:
        return Choice(
            owner.id, AssignmentReason.EXISTING_OWNER, f"existing owner {owner.name}", credits
        )
    if not available:
        reasons = (
            "; ".join(f"{m.name} {why_not[m.id]}" for m in members) or "the team has no members"
        )
        return Choice(None, "", f"nobody available: {reasons}"[:500], credits)
    chosen, credits = rotate([(m.id, m.capacity if weighted else 1) for m in available], credits)
    reason = AssignmentReason.WEIGHTED if weighted else AssignmentReason.ROUND_ROBIN
    note = f"{by_id[chosen].name}: {reason.label.lower()} among {len(available)} available"
    if owner is not None:
        note = f"existing owner {owner.name} {why_not[owner.id]}; {note}"
    return Choice(chosen, reason, note[:500], credits)


# --- What the member and the consumer are told (rendering, no sending) -------------------------


@dataclass(frozen=True)
class LeadFacts:
    """The lead's key facts for the member who is to call: who, how to reach them, what."""

    lead_id: str
    name: str
    phone: str
    email: str
    location: str  # "Chicago, IL 60601"
    vertical: str
    score: int | None = None
    tier: str = ""
    received_at: str = ""

    def pairs(self) -> list[tuple[str, str]]:
        facts = [
            ("Name", self.name or "-"),
            ("Phone", self.phone or "-"),
            ("E-mail", self.email or "-"),
            ("Location", self.location or "-"),
            ("Vertical", self.vertical or "-"),
        ]
        if self.score is not None or self.tier:
            score = "" if self.score is None else str(self.score)
            tier = self.tier.capitalize()
            facts.append(("Score", f"{tier} {score}".strip() if tier else score))
        if self.received_at:
            facts.append(("Received", self.received_at))
        return facts


def lead_facts(lead: Any) -> LeadFacts:
    """Read the key facts from a lead (its normalised data, and its score and tier if scored)."""
    data = lead.data if isinstance(lead.data, dict) else {}
    name = " ".join(
        str(data[part]) for part in ("first_name", "last_name") if data.get(part)
    ) or str(data.get("full_name") or data.get("name") or "")
    zip_code = lead.zip_code or str(data.get("zip_code") or "")
    state = lead.state or str(data.get("state") or "")
    city = str(data.get("city") or "")
    place = ", ".join(part for part in (city, state) if part)
    vertical = getattr(lead, "vertical", None)
    score = getattr(lead, "score", None)
    received = getattr(lead, "received_at", None)
    return LeadFacts(
        lead_id=str(lead.pk),
        name=name,
        phone=lead.phone or str(data.get("phone") or ""),
        email=lead.email or str(data.get("email") or ""),
        location=f"{place} {zip_code}".strip(),
        vertical=vertical.name if vertical is not None else "",
        score=score if isinstance(score, int) else None,
        tier=str(getattr(lead, "tier", "") or ""),
        received_at=received.strftime("%Y-%m-%d %H:%M UTC") if received else "",
    )


@dataclass(frozen=True, slots=True)
class MemberMessage:
    """What the assigned member is told of a lead, whichever the channel: the team, the member,
    the lead's facts, the link that claims it, by when (on the member's clock) and why them."""

    team: str
    member: str
    facts: LeadFacts
    claim_url: str
    due_by: datetime
    time_zone: str
    reason: str

    @property
    def due(self) -> str:
        local = self.due_by.astimezone(ZoneInfo(self.time_zone))
        return f"{local:%H:%M} {self.time_zone}"

    @property
    def tier(self) -> str:
        return f" ({self.facts.tier.capitalize()})" if self.facts.tier else ""


def render_member_slack(message: MemberMessage, *, slack_user_id: str) -> dict[str, Any]:
    """Return the Slack message for the assigned member: the facts and a claim button."""
    facts, member, team = message.facts, message.member, message.team
    who = f"<@{slack_user_id}>" if slack_user_id else slack_escape(member)
    headline = (
        f"New {facts.vertical} lead for {member}" if facts.vertical else f"New lead for {member}"
    )
    text = f"{headline}{message.tier}: {facts.name or facts.lead_id}. Claim by {message.due}."
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"New lead for {team}"[:150]}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{who}: {slack_escape(facts.name or 'a new lead')} is yours "
                f"({slack_escape(message.reason)}). Claim it by {message.due}, or it goes to the "
                "next member.",
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{slack_escape(value)}"[:2000]}
                for label, value in facts.pairs()[:SLACK_FIELDS_MAX]
            ],
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Claim lead"},
                    "url": message.claim_url,
                }
            ],
        },
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": slack_escape(f"Leadswitch · lead {facts.lead_id}")}
            ],
        },
    ]
    return {"text": slack_escape(text)[:3000], "blocks": blocks}


def render_member_email(message: MemberMessage, *, to: str) -> dict[str, Any]:
    """Return the e-mail for the assigned member: subject, recipients and a plain-text body."""
    facts, team = message.facts, message.team
    subject = f"[{team}] New lead for you{message.tier}: {facts.name or facts.lead_id}"
    lines = [
        f"Hi {message.member},",
        "",
        f"A new lead is yours ({message.reason}). Claim it by {message.due}, or it goes to the "
        "next member of the team.",
        "",
        *(f"{label}: {value}" for label, value in facts.pairs()),
        "",
        f"Claim it: {message.claim_url}",
        "",
        "-- ",
        f"Leadswitch, for {team}. Lead {facts.lead_id}.",
    ]
    return {"subject": " ".join(subject.split())[:255], "to": [to], "body": "\n".join(lines) + "\n"}


def render_acknowledgement(*, text: str, first_name: str, team: str, when: str) -> str:
    """Fill in the consumer's acknowledgement (only {first_name}, {team} and {when})."""
    values = {"first_name": first_name or "there", "team": team, "when": when}
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def when_words(opening: datetime | None, *, now: datetime, time_zone: str) -> str:
    """Say when the team will be in touch: 'shortly', or 'on Mon Nov 24 from 09:00
    (America/Chicago)', on the consumer's clock."""
    if opening is None:
        return "as soon as we can"
    if opening <= now + timedelta(minutes=1):
        return "shortly"
    zone = ZoneInfo(time_zone)
    local = opening.astimezone(zone)
    today = now.astimezone(zone).date()
    if local.date() == today:
        day = "today"
    elif local.date() == today + timedelta(days=1):
        day = "tomorrow"
    else:
        day = f"on {local:%a %b} {local.day}"
    return f"{day} from {local:%H:%M} ({time_zone})"
