"""Incident detection: sliding window per group value, threshold, cooldown, redelivery-safe."""

from __future__ import annotations

from escalator.core import IncidentSignal, IncidentWindow, observe
from tests.support import example_policy, ms

PS = example_policy()  # outage: product, 10 in 15 min, cooldown 1 h
M = 60_000


def feed(
    times_min: list[float],
    product: str = "mail",
    start: str = "2026-11-20T10:00:00Z",
    window: IncidentWindow | None = None,
    prefix: str = "T",
) -> tuple[IncidentWindow | None, list]:
    out = []
    base = ms(start)
    for i, t in enumerate(times_min):
        window, emits = observe(window, IncidentSignal("outage", product, f"{prefix}{i}", base + int(t * M)), PS)
        out += emits
    return window, out


def test_fires_when_threshold_reached_inside_window() -> None:
    _, out = feed(list(range(10)))
    assert [e.type for e in out] == ["incident.detected", "notification.requested"]
    inc = out[0].event["data"]
    assert inc["incident_id"] == f"incident:outage:mail:{ms('2026-11-20T10:09:00Z')}"
    assert (inc["count"], inc["group_value"], inc["fired_at"], inc["first_at"]) == (
        10,
        "mail",
        "2026-11-20T10:09:00Z",
        "2026-11-20T10:00:00Z",
    )
    assert inc["tickets"] == [f"T{i}" for i in range(10)]
    assert out[0].key == "mail" and out[1].event["data"]["kind"] == "incident"


def test_spread_out_tickets_do_not_fire() -> None:
    _, out = feed([i * 2 for i in range(10)])  # 10 tickets over 18 minutes: never 10 within 15
    assert out == []


def test_cooldown_suppresses_then_allows() -> None:
    w, out = feed([i * 0.5 for i in range(10)])
    assert len(out) == 2
    w, out = feed([10 + i * 0.1 for i in range(10)], window=w, prefix="U")  # within the hour
    assert out == []
    w, out = feed([70 + i * 0.1 for i in range(10)], window=w, prefix="V")  # after the cooldown
    assert len(out) == 2 and out[0].event["data"]["count"] == 10


def test_redelivered_signal_counts_once() -> None:
    w = None
    for _ in range(12):
        w, out = observe(w, IncidentSignal("outage", "mail", "same", ms("2026-11-20T10:00:00Z")), PS)
        assert out == []
    assert w is not None and len(w.entries) == 1


def test_window_state_round_trips_and_is_bounded() -> None:
    w, _ = feed([i * 3 for i in range(40)])  # two hours of sparse tickets
    assert w is not None and len(w.entries) <= 5
    assert IncidentWindow.from_dict(w.to_dict()) == w


def test_groups_are_independent() -> None:
    w_mail, _ = feed([0, 1, 2, 3, 4], product="mail")
    w_web, out = feed([0, 1, 2, 3, 4], product="web")
    assert out == [] and w_mail is not None and w_web is not None
