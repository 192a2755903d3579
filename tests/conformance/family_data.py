"""What the API-family conformance tests (Python and TypeScript SDKs) send and expect."""

from __future__ import annotations

import datetime as dt
import re
import time

T0 = 1_700_000_000
ALL_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

# A new connector's settings when the request gives none (and what PUT resets to).
DEFAULTS = {
    "activated": False,
    "interrupt_window_days_of_week": ALL_DAYS,
    "interrupt_window_duration_hours": 3.0,
    "interrupt_window_embargo_dates": [],
    "interrupt_window_hour_of_day": 0.0,
    "notes": "",
    "timezone": "UTC",
}
# Every setting away from its default.
SETTINGS = {
    "activated": True,
    "interrupt_window_days_of_week": ["Saturday", "Sunday"],
    "interrupt_window_duration_hours": 1.5,
    "interrupt_window_embargo_dates": ["2026-12-24", "2026-12-31"],
    "interrupt_window_hour_of_day": 22.5,
    "notes": "rack 4, München ✓",
    "timezone": "Europe/Berlin",
}

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
LICENSE_KEY = re.compile(r"^[A-Za-z0-9_-]{20,}$")
VALID_TOKEN_MESSAGE = {"code": 10000, "message": "This API Token is valid and active", "type": None}


def near_now(iso: str | None, slack: float = 60.0) -> bool:
    """An ISO 8601 UTC time (`...Z`) within `slack` seconds of now."""
    assert iso is not None and ISO_UTC.match(iso), iso
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return abs(when - time.time()) <= slack


# Bodies the server must refuse with 400, 20012, when creating a connector.
BAD_CREATES = {
    "no device field": {"device": {}},
    "two device fields": {"device": {"id": "a", "serial_number": "b"}},
    "provision_license false": {"device": {"provision_license": False}},
    "unknown device field": {"device": {"id": "a", "mac": "00:11"}},
    "hour 24": {"device": {"id": "a"}, "interrupt_window_hour_of_day": 24},
    "negative hour": {"device": {"id": "a"}, "interrupt_window_hour_of_day": -1},
    "duration 0": {"device": {"id": "a"}, "interrupt_window_duration_hours": 0},
    "duration 24.5": {"device": {"id": "a"}, "interrupt_window_duration_hours": 24.5},
    "bad weekday": {"device": {"id": "a"}, "interrupt_window_days_of_week": ["Funday"]},
    "bad date": {"device": {"id": "a"}, "interrupt_window_embargo_dates": ["2026-02-30"]},
    "bad timezone": {"device": {"id": "a"}, "timezone": "Mars/Olympus_Mons"},
    "notes not a string": {"device": {"id": "a"}, "notes": 5},
}

# -- a connector's event history for List Events / Latest --

KINDS = ["Init", "Reconcile", "HaTransition", "RekeyStart", "StartUpgrade"]
WINDOW = range(T0, T0 + 10)  # ten seconds with 25 events each: 250 events from T0 to T0 + 9


def history_event(t: int, n: int) -> dict:
    kind = KINDS[(t + n) % len(KINDS)]
    e: dict = {"k": kind, "seq": [t, n]}
    if kind == "StartUpgrade":
        e["url"] = f"https://dl.example.com/{t}.{n}.tar"
    event = {"t": t, "n": n, "e": e}
    if n % 3:
        event["v"] = f"1.{n}"
    return event


IN_WINDOW = [history_event(t, n) for t in WINDOW for n in range(25)]
# Just outside [T0, T0 + 9], on both sides.
OUTSIDE = [history_event(T0 - 1, 0), history_event(T0 - 1, 24), history_event(T0 + 10, 0), history_event(T0 + 100, 5)]
# Newest first, as Latest returns them.
NEWEST_100 = sorted(IN_WINDOW + OUTSIDE, key=lambda e: (e["t"], e["n"]), reverse=True)[:100]
HA_TRANSITIONS = [e for e in IN_WINDOW if e["e"]["k"] == "HaTransition"]  # 50 of them

# A small history for Latest, in the order Latest must return it.
SMALL = [
    {"t": T0, "n": 1, "e": {"k": "HaError", "detail": {"code": 7}}, "v": "3.0"},
    {"t": T0, "n": 0, "e": {"k": "HaInit"}},
    {"t": T0 - 50, "n": 99, "e": {"k": "StartUpgrade", "url": "https://x.example/u"}, "v": "2.9"},
]
