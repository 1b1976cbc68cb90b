import re

from hypothesis import given
from hypothesis import strategies as st

from streamspace.domain.names import (
    SESSION_NAME_MAX,
    dns_label,
    home_claim_name,
    is_dns_label,
    session_name,
    session_object_name,
    shorten,
    user_label,
)

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_dns_label_normalises():
    assert dns_label("Alice.Smith@Example.com") == "alice-smith-example-com"
    assert dns_label("--x__y--") == "x-y"
    assert dns_label("firefox") == "firefox"


def test_dns_label_never_empty_and_distinct_for_unusable_input():
    assert is_dns_label(dns_label("@@@"))
    assert is_dns_label(dns_label(""))
    assert dns_label("@@@") != dns_label("###")


@given(st.text(max_size=200))
def test_dns_label_always_valid(text):
    assert LABEL.fullmatch(dns_label(text)) and len(dns_label(text)) <= 63


def test_shorten_is_stable_and_distinct():
    long_a, long_b = "a" * 70 + "x", "a" * 70 + "y"
    assert len(shorten(long_a)) == 63 and shorten(long_a) == shorten(long_a)
    assert shorten(long_a) != shorten(long_b)
    assert shorten("short") == "short"
    assert is_dns_label(shorten("a" * 52 + "-" + "b" * 20))


def test_user_label_keeps_safe_names_and_separates_normalised_ones():
    assert user_label("alice") == "alice"
    assert user_label("Alice") != user_label("alice")
    assert user_label("alice.smith") != user_label("alice-smith")
    assert is_dns_label(user_label("Alice.Smith@corp"))
    assert user_label("Alice") == user_label("Alice")


@given(st.text(min_size=1, max_size=100), st.text(min_size=1, max_size=100))
def test_session_name_fits_owned_prefix(user, template):
    name = session_name(user, template, "k3x9q")
    assert is_dns_label(name, SESSION_NAME_MAX)
    assert name.endswith("-k3x9q")
    assert is_dns_label(session_object_name(name)) and session_object_name(name) == f"ss-{name}"


def test_session_name_shape():
    assert session_name("alice", "firefox", "7k2xq") == "alice-firefox-7k2xq"
    long = session_name("u" * 40, "t" * 40, "abcde")
    assert len(long) <= SESSION_NAME_MAX and long.endswith("-abcde")


def test_session_name_refuses_unsafe_suffix():
    import pytest

    with pytest.raises(ValueError):
        session_name("alice", "firefox", "A B")


def test_home_claim_name():
    assert home_claim_name("alice") == "home-alice"
    assert is_dns_label(home_claim_name("Some Very Long User Name " * 5))
