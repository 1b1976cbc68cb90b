"""Kubernetes resource quantities (``500m``, ``2``, ``1.5Gi``, ``1e3``), parsed exactly.

Decimal arithmetic with the Inexact trap set means a value is either represented exactly or
refused; nothing is rounded silently (``0.1`` + ``0.2`` cores is exactly ``300m``). CPU must be
a whole number of millicores and memory a whole number of bytes, so ``1u`` of CPU or ``1m`` of
memory is an error instead of quietly becoming 0.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext

from streamspace.domain.errors import ValidationError

# The CRD schemas use this exact string (tests/crds checks they agree). Signs are not accepted:
# a negative resource is never meaningful here.
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)

_BINARY_FACTORS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXPONENTS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# Bounds that keep Decimal arithmetic exact and values inside Kubernetes' int64 range.
_MAX_TEXT_LENGTH = 64
_MAX_EXPONENT = 30
_INT64_MAX = 2**63 - 1
# Every operation on a parsed amount runs in this context: plenty of digits, and any rounding raises.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])

CPU_FORM = "a Kubernetes CPU quantity such as 500m, 1 or 2.5 (whole millicores)"
MEMORY_FORM = "a Kubernetes memory quantity such as 512Mi, 2Gi or 1G (whole bytes)"
QUANTITY_FORM = "a Kubernetes quantity such as 500m, 2, 1.5Gi or 1e3"


class QuantityError(ValidationError):
    """A quantity that is malformed, negative, out of range or not exactly representable."""


def _as_text(value: object, field: str, form: str) -> str:
    # YAML and JSON hand us 2 or 0.5 as numbers; bool is an int subclass but never a quantity.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise QuantityError(field, f"expected {form}, got {value!r}")


def parse_quantity(value: object, field: str, form: str = QUANTITY_FORM) -> Decimal:
    """Exact value of a quantity in base units (cores, bytes...)."""
    text = _as_text(value, field, form)
    match = _QUANTITY_RE.fullmatch(text) if len(text) <= _MAX_TEXT_LENGTH else None
    if match is None:
        if text.startswith("-"):
            raise QuantityError(field, f"must not be negative, got {text!r}; expected {form}")
        raise QuantityError(field, f"expected {form}, got {text!r}")
    number_text, suffix = match.group(1), match.group(3) or ""
    with localcontext(_EXACT):
        try:
            number = Decimal(number_text)
            if suffix in _BINARY_FACTORS:
                return number * _BINARY_FACTORS[suffix]
            exponent = _DECIMAL_EXPONENTS[suffix] if suffix in _DECIMAL_EXPONENTS else int(suffix[1:])
            if abs(exponent) > _MAX_EXPONENT:
                raise QuantityError(field, f"exponent out of range in {text!r}; expected {form}")
            return number.scaleb(exponent)
        except (Inexact, InvalidOperation):
            raise QuantityError(field, f"{text!r} cannot be represented exactly; expected {form}") from None


def _whole(amount: Decimal, field: str, text: object, form: str, allow_zero: bool) -> int:
    if amount != amount.to_integral_value():
        raise QuantityError(field, f"{text!r} is finer than the smallest unit; expected {form}")
    whole = int(amount)
    if whole == 0 and not allow_zero:
        raise QuantityError(field, f"must be greater than zero, got {text!r}; expected {form}")
    if whole > _INT64_MAX:
        raise QuantityError(field, f"{text!r} is too large; expected {form}")
    return whole


def cpu_millis(value: object, field: str = "cpu", *, allow_zero: bool = False) -> int:
    """CPU quantity -> whole millicores (``1.5`` -> 1500, ``250m`` -> 250)."""
    cores = parse_quantity(value, field, CPU_FORM)
    with localcontext(_EXACT):
        millis = cores.scaleb(3)
    return _whole(millis, field, value, CPU_FORM, allow_zero)


def parse_cpu(value: object, field: str = "cpu", *, allow_zero: bool = False) -> Decimal:
    """CPU quantity -> exact cores (``500m`` -> Decimal('0.5'))."""
    return Decimal(cpu_millis(value, field, allow_zero=allow_zero)).scaleb(-3)


def parse_memory(value: object, field: str = "memory", *, allow_zero: bool = False) -> int:
    """Memory quantity -> whole bytes (``512Mi`` -> 536870912)."""
    return _whole(parse_quantity(value, field, MEMORY_FORM), field, value, MEMORY_FORM, allow_zero)


def format_cpu(millis: int) -> str:
    """Millicores -> the shortest exact quantity: 2000 -> ``2``, 1500 -> ``1500m``."""
    if millis < 0:
        raise ValueError(f"millicores must not be negative, got {millis}")
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: int) -> str:
    """Bytes -> an exact quantity, preferring binary suffixes: 1610612736 -> ``1536Mi``."""
    if size < 0:
        raise ValueError(f"bytes must not be negative, got {size}")
    if size == 0:
        return "0"
    for suffix, factor in reversed(_BINARY_FACTORS.items()):
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    for suffix in ("E", "P", "T", "G", "M", "k"):
        factor = 10 ** _DECIMAL_EXPONENTS[suffix]
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)
