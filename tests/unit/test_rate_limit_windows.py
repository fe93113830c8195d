"""The arithmetic of a limit: N attempts per window, refused with the seconds left until it closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from command_api.rate_limits.windows import ALLOWED, Count, Limit, Verdict, judge, strictest

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
FIVE_PER_MINUTE = Limit(attempts=5, seconds=60)


def test_a_window_opened_now_closes_its_length_later() -> None:
    assert FIVE_PER_MINUTE.window_opened(NOW) == NOW + timedelta(seconds=60)


def test_attempts_up_to_the_limit_are_allowed() -> None:
    closes = FIVE_PER_MINUTE.window_opened(NOW)
    assert [judge(Count(hits, closes), FIVE_PER_MINUTE, NOW) for hits in range(1, 6)] == [ALLOWED] * 5


def test_the_attempt_after_the_limit_is_refused_until_the_window_closes() -> None:
    closes = NOW + timedelta(seconds=42)
    assert judge(Count(6, closes), FIVE_PER_MINUTE, NOW) == Verdict(allowed=False, retry_after=42)


def test_retry_after_is_rounded_up_to_a_whole_second_and_never_zero() -> None:
    assert judge(Count(6, NOW + timedelta(seconds=41.2)), FIVE_PER_MINUTE, NOW).retry_after == 42
    assert judge(Count(6, NOW + timedelta(milliseconds=1)), FIVE_PER_MINUTE, NOW).retry_after == 1
    # A window another instance's clock already sees closed still asks for a second, not zero or less.
    assert judge(Count(6, NOW - timedelta(seconds=3)), FIVE_PER_MINUTE, NOW).retry_after == 1


def test_an_attempt_counted_against_several_keys_is_refused_if_any_refuses_it() -> None:
    refused_briefly = Verdict(allowed=False, retry_after=5)
    refused_long = Verdict(allowed=False, retry_after=600)
    assert strictest([ALLOWED, ALLOWED]) == ALLOWED
    assert strictest([]) == ALLOWED
    assert strictest([ALLOWED, refused_briefly]) == refused_briefly
    # The client is told to come back when every key lets it in again.
    assert strictest([refused_briefly, ALLOWED, refused_long]) == refused_long
