"""Dead-letter copies: unchanged while they fit the limit, cut to fit (and saying so) beyond it."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escalator.core import DecodeError
from escalator.service.codec import dead_letter

ERR = DecodeError("oversize", "value is too big")
ORIGIN = ("ticket-events", 3, 42)


def _size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    return len(key or b"") + len(value or b"") + sum(len(k.encode()) + len(v) + 10 for k, v in headers)


def test_a_record_that_fits_is_copied_whole_with_its_origin() -> None:
    key, value, headers = dead_letter(b"T1", b"{nope", [("trace", b"abc")], ERR, ORIGIN, 10_000)
    assert (key, value) == (b"T1", b"{nope")
    assert headers == [
        ("trace", b"abc"),
        ("escalator-dlq-reason", b"oversize"),
        ("escalator-dlq-detail", b"value is too big"),
        ("escalator-dlq-topic", b"ticket-events"),
        ("escalator-dlq-partition", b"3"),
        ("escalator-dlq-offset", b"42"),
    ]


def test_the_limit_is_exact() -> None:
    _, _, headers = dead_letter(b"T1", b"", None, ERR, ORIGIN, 10_000)
    fits = 10_000 - _size(b"T1", b"", headers)
    assert dead_letter(b"T1", b"x" * fits, None, ERR, ORIGIN, 10_000)[1] == b"x" * fits
    _, value, cut = dead_letter(b"T1", b"x" * (fits + 1), None, ERR, ORIGIN, 10_000)
    assert dict(cut)["escalator-dlq-truncated"] == b"value" and len(value or b"") < fits


def test_only_what_must_be_cut_is_cut() -> None:
    _, value, headers = dead_letter(b"T1", b"x" * 20_000, [("a", b"1")], ERR, ORIGIN, 10_000)
    got = dict(headers)
    assert got["escalator-dlq-truncated"] == b"value" and got["a"] == b"1"
    assert value is not None and 9_000 < len(value) < 10_000 and set(value) == {ord("x")}
    assert got["escalator-dlq-value-bytes"] == b"20000"
    assert got["escalator-dlq-value-sha256"] == hashlib.sha256(b"x" * 20_000).hexdigest().encode()


def test_a_stale_dlq_header_of_the_original_is_not_copied() -> None:
    """A record dead-lettered twice (replayed from the DLQ) names its own origin, not its earlier one."""
    _, _, headers = dead_letter(b"T1", b"{", [("escalator-dlq-reason", b"forged")], ERR, ORIGIN, 10_000)
    assert [v for k, v in headers if k == "escalator-dlq-reason"] == [b"oversize"]


@given(
    key=st.one_of(st.none(), st.binary(max_size=3_000)),
    value=st.one_of(st.none(), st.binary(max_size=30_000)),
    headers=st.lists(st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=4_000)), max_size=12),
    detail=st.text(max_size=5_000),
    limit=st.integers(min_value=10_000, max_value=40_000),
)
def test_a_dead_letter_never_exceeds_the_limit_and_keeps_a_prefix(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], detail: str, limit: int
) -> None:
    err = DecodeError("invalid_json", detail, event_id=detail[:2000] or None)
    out_key, out_value, out_headers = dead_letter(key, value, headers, err, ORIGIN, limit)
    assert _size(out_key, out_value, out_headers) <= limit
    assert (key or b"").startswith(out_key or b"") and (value or b"").startswith(out_value or b"")
    cut = dict(out_headers).get("escalator-dlq-truncated")
    if cut is None:
        assert (out_key, out_value) == (key, value)
    else:
        assert set(cut.decode().split(",")) <= {"key", "headers", "value", ""}


def test_the_smallest_limit_holds_with_the_longest_origin_headers() -> None:
    err = DecodeError("schema_violation", "d" * 10_000, event_id="e" * 10_000)
    many = [(f"h{i}", b"x" * 900) for i in range(50)]
    key, value, headers = dead_letter(b"k" * 50_000, b"v" * 50_000, many, err, ORIGIN, 10_000)
    assert _size(key, value, headers) <= 10_000
    assert dict(headers)["escalator-dlq-truncated"] == b"key,headers,value"


@pytest.mark.parametrize("limit", [10_000, 900_000])
def test_a_huge_key_and_headers_leave_room_for_the_origin(limit: int) -> None:
    key, value, headers = dead_letter(b"k" * 2_000_000, b"v" * 2_000_000, [("h", b"x" * 2_000_000)], ERR, ORIGIN, limit)
    got = dict(headers)
    assert got["escalator-dlq-truncated"] == b"key,headers,value" and "h" not in got
    assert key == b"k" * min(1024, limit // 16) and got["escalator-dlq-offset"] == b"42"
    assert value is not None and len(value) > limit // 2 and set(value) == {ord("v")}
