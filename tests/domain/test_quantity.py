from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamspace.domain.errors import ValidationError
from streamspace.domain.quantity import (
    QuantityError,
    cpu_millis,
    format_cpu,
    format_memory,
    parse_cpu,
    parse_memory,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("0.5", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("1e3", Decimal(1000)),
        ("250000u", Decimal("0.25")),
        ("1k", Decimal(1000)),
        (".5", Decimal("0.5")),
        (2, Decimal(2)),
        (0.25, Decimal("0.25")),
    ],
)
def test_parse_cpu(text, cores):
    assert parse_cpu(text) == cores


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512Mi", 512 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("1Ki", 1024),
        ("100M", 100_000_000),
        ("1E", 10**18),
        ("1e3", 1000),
        ("2Gi", 2 * 2**30),
        ("1G", 10**9),
        (1073741824, 2**30),
    ],
)
def test_parse_memory(text, size):
    assert parse_memory(text) == size


def test_sums_are_exact():
    assert parse_cpu("0.1") + parse_cpu("0.2") == parse_cpu("0.3") == parse_cpu("300m")
    assert cpu_millis("0.1") + cpu_millis("0.2") == 300
    assert sum(parse_memory("0.25Gi") for _ in range(4)) == parse_memory("1Gi")


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "abc", "1gi", "1KiB", "1.5.5", "Gi", "1i", "NaN", "inf", "1e", "--1", "0x10", "1e999", "1_000"],
)
def test_garbage_refused(text):
    with pytest.raises(QuantityError):
        parse_quantity(text, "q")


@pytest.mark.parametrize("bad", [True, None, [], {}, float("nan"), float("inf")])
def test_non_quantities_refused(bad):
    with pytest.raises(QuantityError):
        parse_cpu(bad)


def test_negative_refused_with_clear_message():
    with pytest.raises(QuantityError, match="must not be negative"):
        parse_memory("-1Gi")
    with pytest.raises(QuantityError):
        cpu_millis(-1)


def test_values_that_would_round_to_zero_are_refused():
    with pytest.raises(QuantityError, match="finer than the smallest unit"):
        parse_memory("1m")  # 0.001 bytes
    with pytest.raises(QuantityError, match="finer than the smallest unit"):
        cpu_millis("1u")
    with pytest.raises(QuantityError, match="finer"):
        parse_memory("0.5")
    with pytest.raises(QuantityError, match="finer"):
        parse_memory("0.1Gi")  # 107374182.4 bytes


def test_zero_refused_unless_allowed():
    with pytest.raises(QuantityError, match="greater than zero"):
        parse_cpu("0")
    assert parse_memory("0", allow_zero=True) == 0
    assert cpu_millis("0m", allow_zero=True) == 0


def test_too_large_refused():
    with pytest.raises(QuantityError, match="too large"):
        parse_memory("16Ei")
    with pytest.raises(QuantityError):
        parse_memory("1" * 80)


def test_error_names_field_and_accepted_form():
    with pytest.raises(ValidationError) as caught:
        parse_memory("lots", "resources.memory")
    assert caught.value.field == "resources.memory"
    assert "512Mi" in caught.value.message and "'lots'" in caught.value.message
    with pytest.raises(ValidationError) as caught:
        cpu_millis("fast", "resources.cpu")
    assert caught.value.field == "resources.cpu" and "500m" in caught.value.message


@pytest.mark.parametrize(("millis", "text"), [(1500, "1500m"), (2000, "2"), (1, "1m"), (0, "0")])
def test_format_cpu(millis, text):
    assert format_cpu(millis) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(1536 * 2**20, "1536Mi"), (2 * 2**30, "2Gi"), (10**9, "1G"), (1000, "1k"), (1001, "1001"), (0, "0")],
)
def test_format_memory(size, text):
    assert format_memory(size) == text


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_memory_round_trip(size):
    assert parse_memory(format_memory(size)) == size


@given(st.integers(min_value=1, max_value=10**15))
def test_cpu_round_trip(millis):
    assert cpu_millis(format_cpu(millis)) == millis


@given(st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10**6), places=3))
def test_decimal_cpu_text_is_exact(cores):
    assert parse_cpu(str(cores)) == cores
