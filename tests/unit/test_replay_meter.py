"""A replay's rate is measured up to its last event, however late it is read."""

from __future__ import annotations

from unittest import mock

from projectors.runtime.rebuild import ReplayMeter


def test_the_rate_stops_at_the_last_event() -> None:
    with mock.patch("projectors.runtime.rebuild.time.monotonic") as clock:
        clock.return_value = 100.0
        meter = ReplayMeter(total=1_010, progress=lambda line: None)  # 10 of them transaction markers
        clock.return_value = 101.0
        meter.add(600)
        clock.return_value = 102.0
        meter.add(400)
        meter.finish()
        clock.return_value = 130.0  # a swap or another rebuild later
        assert meter.rate == 500.0
