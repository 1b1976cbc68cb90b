import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamspace.domain.duration import DurationError, format_duration, parse_duration
from streamspace.domain.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h", 3600),
        ("90s", 90),
        ("1h30m", 5400),
        ("0", 0),
        ("0s", 0),
        ("2h0m5s", 7205),
        ("168h", 604800),
        ("90m", 5400),
        ("1m30s", 90),
    ],
)
def test_parse(text, seconds):
    assert parse_duration(text, "idleTimeout") == seconds


@pytest.mark.parametrize(
    "text", ["", "30", "1d", "-1h", "1.5h", "30m1h", "1h 30m", " 30m", "h", "30M", "30m\n", "1hh", "1000000000h"]
)
def test_refused(text):
    with pytest.raises(DurationError):
        parse_duration(text, "idleTimeout")


def test_non_strings_refused():
    with pytest.raises(DurationError):
        parse_duration(30, "idleTimeout")


def test_error_names_field_and_form():
    with pytest.raises(ValidationError) as caught:
        parse_duration("soon", "maxSessionDuration")
    assert caught.value.field == "maxSessionDuration"
    assert "1h30m" in caught.value.message and "'soon'" in caught.value.message


@pytest.mark.parametrize(("seconds", "text"), [(0, "0"), (90, "1m30s"), (5400, "1h30m"), (3600, "1h"), (7205, "2h5s")])
def test_format(seconds, text):
    assert format_duration(seconds) == text


def test_format_refuses_negative():
    with pytest.raises(ValueError):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=(10**9 - 1) * 3600))
def test_round_trip(seconds):
    assert parse_duration(format_duration(seconds), "d") == seconds
