"""US states as leads and territories give them: a two-letter code or a name, in any case."""

from __future__ import annotations

import re

# The 50 states, DC and Puerto Rico.
# fmt: off
US_STATES = (
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID",
    "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO",
    "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA",
    "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR",
)
# fmt: on
STATE_NAMES = {
    "alabama": "AL",
    "alaska": "AK",
    "arizona": "AZ",
    "arkansas": "AR",
    "california": "CA",
    "colorado": "CO",
    "connecticut": "CT",
    "delaware": "DE",
    "district of columbia": "DC",
    # The capital's usual names: "Washington DC" is not Washington and DC.
    "washington dc": "DC",
    "washington d.c.": "DC",
    "d.c.": "DC",
    "florida": "FL",
    "georgia": "GA",
    "hawaii": "HI",
    "idaho": "ID",
    "illinois": "IL",
    "indiana": "IN",
    "iowa": "IA",
    "kansas": "KS",
    "kentucky": "KY",
    "louisiana": "LA",
    "maine": "ME",
    "maryland": "MD",
    "massachusetts": "MA",
    "michigan": "MI",
    "minnesota": "MN",
    "mississippi": "MS",
    "missouri": "MO",
    "montana": "MT",
    "nebraska": "NE",
    "nevada": "NV",
    "new hampshire": "NH",
    "new jersey": "NJ",
    "new mexico": "NM",
    "new york": "NY",
    "north carolina": "NC",
    "north dakota": "ND",
    "ohio": "OH",
    "oklahoma": "OK",
    "oregon": "OR",
    "pennsylvania": "PA",
    "rhode island": "RI",
    "south carolina": "SC",
    "south dakota": "SD",
    "tennessee": "TN",
    "texas": "TX",
    "utah": "UT",
    "vermont": "VT",
    "virginia": "VA",
    "washington": "WA",
    "west virginia": "WV",
    "wisconsin": "WI",
    "wyoming": "WY",
    "puerto rico": "PR",
}  # fmt: skip
# No name is longer than this many words ("district of columbia").
LONGEST_NAME_WORDS = max(len(name.split()) for name in STATE_NAMES)
LIST_SEPARATORS_RE = re.compile(r"[,;\n]")


def state_code(text: str) -> str | None:
    """Return the two-letter code of a state given by its code or name, or None."""
    words = text.split()
    if len(words) == 1 and len(words[0]) == 2:
        code = words[0].upper()
        return code if code in US_STATES else None
    return STATE_NAMES.get(" ".join(words).lower())


def parse_states(text: str) -> tuple[list[str], list[str]]:
    """Read a pasted list of states: codes or names, separated by commas, semicolons, new lines
    or (between codes and names) spaces: "IL IN", "New York, Illinois", "new york new jersey".

    Return the codes in order and the parts that name no state, as typed.
    """
    codes: list[str] = []
    bad: list[str] = []
    for part in LIST_SEPARATORS_RE.split(text or ""):
        words = part.split()
        unread: list[str] = []
        start = 0
        while start < len(words):
            # The longest name first: "West Virginia" is not Virginia.
            for end in range(min(len(words), start + LONGEST_NAME_WORDS), start, -1):
                code = state_code(" ".join(words[start:end]))
                if code is not None:
                    break
            else:
                unread.append(words[start])
                start += 1
                continue
            if unread:
                bad.append(" ".join(unread))
                unread = []
            codes.append(code)
            start = end
        if unread:
            bad.append(" ".join(unread))
    return codes, bad
