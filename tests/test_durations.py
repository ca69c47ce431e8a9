"""The one duration parser: both spellings exactly as their commands accept them."""

from __future__ import annotations

import pytest

from shadowswap.durations import interval_seconds, range_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("6h", 21600), ("2d", 172800), ("2w", 1209600),
     (" 1h ", 3600), ("0s", 0)],
)  # fmt: skip
def test_range_durations(text: str, seconds: int) -> None:
    assert range_seconds(text) == seconds and isinstance(range_seconds(text), int)


@pytest.mark.parametrize("text", ["", "1", "1h30m", "1.5h", "1H", "h", "-1h", "1y", "1 h", "1ms"])
def test_range_refusals(text: str) -> None:
    assert range_seconds(text) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("10m", 600.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("2D", 172800.0),
     ("90", 90.0), ("0.5", 0.5), (" 1m ", 60.0), ("0s", 0.0)],
)  # fmt: skip
def test_interval_durations(text: str, seconds: float) -> None:
    assert interval_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1w", "h", "1h 30m", "-5", "1.h", "ten", ".5"])
def test_interval_refusals(text: str) -> None:
    assert interval_seconds(text) is None
