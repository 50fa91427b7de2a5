"""What became of one outbound call, whether another try may help, and how long to wait.

Every loop that retries a call leaving the platform asks the same two questions here: buyer
posts (routing.engine, within the routing run), source postbacks (leads.tasks.send_postback),
ops and team notifications (their Celery tasks). Each loop keeps its own bound on attempts and
its own record of them; the rule and the backoff are this module's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Jitter = Literal["full", "equal"]


def status_is_transient(status: int) -> bool:
    """Return whether an answer says "try again later": 408, 429 or any 5xx.

    Any other answer is the other side's considered reply (a 4xx, or a 3xx the platform does
    not follow) and would be the same the next time.
    """
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class Outcome:
    """What became of one call (HTTP or e-mail): the answer, or why there was none.

    Of a call that failed exactly one of `transient`, `ambiguous` and `permanent` holds; whether
    it failed is for its owner to say (a buyer's 200 may be a rejection; the mail backend takes a
    message with 250).
    """

    status: int | None = None
    body: str = ""  # the start of the answer, as text
    latency_ms: int = 0
    error: str = ""
    # The request may have reached the other side but no answer came (a read timeout, a
    # connection dropped after sending): it may have been acted on.
    ambiguous: bool = False
    timed_out: bool = False
    # Never sent, and never will be as it stands: a forbidden address (outbound.guard), an
    # invalid URL, a message with nowhere to go.
    refused: bool = False

    @property
    def transient(self) -> bool:
        """Nothing was done on the other side and another try may pass: a connect error, a
        timeout before sending, or an answer of 408, 429 or 5xx."""
        if self.refused or self.ambiguous:
            return False
        return self.status is None or status_is_transient(self.status)

    @property
    def permanent(self) -> bool:
        """Another try would end the same (a refusal, any other answer), if this one failed."""
        return not self.transient and not self.ambiguous


def retryable(outcome: Outcome, *, idempotent: bool) -> bool:
    """Return whether a failed call is worth another try (the caller bounds the attempts).

    A transient failure always is. An ambiguous one only for a call that may safely arrive twice
    (a notification, a postback naming its lead): a buyer's post must never be blindly repeated.
    """
    return outcome.transient or (idempotent and outcome.ambiguous)


def backoff(attempt: int, *, base_s: float, cap_s: float, jitter: Jitter = "equal") -> float:
    """Return the seconds to wait after the `attempt`-th try (1 for the first) failed.

    The ceiling doubles from `base_s` after each failed try, up to `cap_s`. Full jitter waits
    anywhere below the ceiling; equal jitter in its upper half, so a wait is never short. Either
    spreads the retries of many calls that failed together (a receiver's outage) apart.
    """
    ceiling = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    if jitter == "full":
        return random.uniform(0, ceiling)  # noqa: S311 - spreading retries, not a secret
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311
