"""Offline US ZIP data (the `zipcodes` package): city, state, county, time zone, coordinates."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache

EARTH_RADIUS_MILES = 3958.8


@dataclass(frozen=True, slots=True)
class ZipInfo:
    zip_code: str
    city: str
    state: str
    county: str
    time_zone: str
    lat: float
    lon: float
    active: bool


_table_lock = threading.Lock()


def _table() -> dict[str, ZipInfo]:
    # One builder at a time: routing threads starting together would each build it (~0.8 s).
    with _table_lock:
        return _build_table()


@cache
def _build_table() -> dict[str, ZipInfo]:
    # The package scans a list per lookup (~2.5 ms); one dict built once per process (~0.8 s)
    # makes every later lookup a hash probe.
    import zipcodes

    table = {}
    for row in zipcodes.list_all():
        table[row["zip_code"]] = ZipInfo(
            zip_code=row["zip_code"],
            city=row["city"].title(),
            state=row["state"],
            county=row["county"] or "",
            time_zone=row["timezone"] or "",
            lat=float(row["lat"]),
            lon=float(row["long"]),
            active=bool(row["active"]),
        )
    return table


def zip_lookup(zip_code: str) -> ZipInfo | None:
    """Return what is known of a 5-digit ZIP code, or None for one that does not exist."""
    return _table().get(zip_code)


def distance_miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in miles (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(a)))
