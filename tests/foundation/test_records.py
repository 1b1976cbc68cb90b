"""`streamspace.records.record` behaves as `dataclasses.dataclass(frozen=True)` does.

Each shape is declared twice, once with each decorator, and every observable behaviour is compared:
construction and defaults, repr, equality and hashing, immutability, and dataclasses' own functions.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from typing import Any, ClassVar

import pytest

from streamspace.records import record


def _shapes(decorate: Any) -> dict[str, type]:
    @decorate
    class Empty:
        """No fields."""

    @decorate
    class One:
        """One field."""

        name: str

    @decorate
    class Mixed:
        """Required, defaulted, factory-made, hidden from repr and left out of comparison."""

        name: str
        size: int
        tags: tuple[str, ...] = ()
        labels: frozenset[str] = dataclasses.field(default_factory=frozenset)
        secret: str | None = dataclasses.field(default=None, repr=False)
        seen: int = dataclasses.field(default=0, compare=False)
        KIND: ClassVar[str] = "mixed"

        @property
        def shout(self) -> str:
            return self.name.upper()

    return {"Empty": Empty, "One": One, "Mixed": Mixed}


@record
class Stored:
    """A record pickle can find by name."""

    name: str
    tags: tuple[str, ...] = ()


def test_a_record_pickles_and_copies() -> None:
    value = Stored("a", ("x",))
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value) == value and copy.copy(value) == value


RECORDS = _shapes(record)
DATACLASSES = _shapes(dataclasses.dataclass(frozen=True))

ARGS: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "Empty": [((), {})],
    "One": [(("a",), {}), ((), {"name": "b"})],
    "Mixed": [(("a", 1), {}), (("a", 1, ("x",)), {"labels": frozenset({"k"}), "secret": "s", "seen": 3}),
              (("b",), {"size": 2, "seen": 9})],
}
CASES = [(shape, args, kwargs) for shape, calls in ARGS.items() for args, kwargs in calls]


def _pair(shape: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    return RECORDS[shape](*args, **kwargs), DATACLASSES[shape](*args, **kwargs)


def _state(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


@pytest.mark.parametrize(("shape", "args", "kwargs"), CASES)
def test_a_record_is_built_shown_compared_and_hashed_as_a_frozen_dataclass(shape: str, args: tuple[Any, ...],
                                                                           kwargs: dict[str, Any]) -> None:
    ours, theirs = _pair(shape, args, kwargs)
    assert _state(ours) == _state(theirs)
    assert repr(ours) == repr(theirs)
    assert hash(ours) == hash(theirs)
    again = type(ours)(*args, **kwargs)
    assert ours == again and not ours != again
    assert (ours == theirs) is False  # another class, as between two dataclasses
    assert dataclasses.is_dataclass(ours)
    assert [(f.name, f.default, f.repr, f.compare) for f in dataclasses.fields(ours)] == \
        [(f.name, f.default, f.repr, f.compare) for f in dataclasses.fields(theirs)]
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    assert dataclasses.astuple(ours) == dataclasses.astuple(theirs)
    assert copy.deepcopy(ours) == ours and copy.copy(ours) == ours


@pytest.mark.parametrize("shape", sorted(RECORDS))
def test_a_record_takes_the_arguments_a_frozen_dataclass_takes(shape: str) -> None:
    ours, theirs = inspect.signature(RECORDS[shape]), inspect.signature(DATACLASSES[shape])
    assert [(p.name, p.kind) for p in ours.parameters.values()] == \
        [(p.name, p.kind) for p in theirs.parameters.values()]
    assert [repr(p.default) for p in ours.parameters.values()] == \
        [repr(p.default) for p in theirs.parameters.values()]
    assert RECORDS[shape].__match_args__ == DATACLASSES[shape].__match_args__
    with pytest.raises(TypeError) as ours_error:
        RECORDS[shape](*range(10))
    with pytest.raises(TypeError) as theirs_error:
        DATACLASSES[shape](*range(10))
    assert str(ours_error.value).split("()", 1)[1] == str(theirs_error.value).split("()", 1)[1]


def test_fields_compared_and_hashed_are_the_same_ones() -> None:
    mixed = RECORDS["Mixed"]
    assert mixed("a", 1, seen=1) == mixed("a", 1, seen=2)  # seen: compare=False
    assert hash(mixed("a", 1, seen=1)) == hash(mixed("a", 1, seen=2))
    assert mixed("a", 1) != mixed("a", 2)
    assert mixed("a", 1, labels=frozenset({"k"})) != mixed("a", 1)
    assert RECORDS["One"]("a") != RECORDS["One"]("b")
    assert RECORDS["One"]("a").__eq__(("a",)) is NotImplemented


def test_a_default_factory_makes_a_new_value_for_each_record_and_a_given_value_is_kept() -> None:
    @record
    class Bag:
        items: list[str] = dataclasses.field(default_factory=list)

    first, second = Bag(), Bag()
    assert first.items == [] and first.items is not second.items
    given = ["x"]
    assert Bag(given).items is given
    assert RECORDS["Mixed"]("a", 1).labels == frozenset()


def test_a_record_cannot_be_changed_as_a_frozen_dataclass_cannot() -> None:
    ours, theirs = _pair("Mixed", ("a", 1), {})
    for obj in (ours, theirs):
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'name'"):
            obj.name = "b"
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'other'"):
            obj.other = 1
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'name'"):
            del obj.name
    assert ours.shout == "A" and type(ours).KIND == "mixed"
    changed = dataclasses.replace(ours, name="b", seen=5)
    assert type(changed) is type(ours) and (changed.name, changed.size, changed.seen) == ("b", 1, 5)
    assert ours.name == "a"


def test_a_frozen_dataclass_may_extend_a_record() -> None:
    @dataclasses.dataclass(frozen=True)
    class Extended(RECORDS["Mixed"]):  # type: ignore[misc, valid-type]
        extra: int = 7

    value = Extended("a", 1)
    assert (value.name, value.size, value.extra) == ("a", 1, 7)
    assert repr(value).startswith("test_a_frozen_dataclass_may_extend_a_record.<locals>.Extended(name='a'")
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.extra = 8


def test_eq_false_compares_by_identity_as_a_dataclass_with_eq_false_does() -> None:
    @record(eq=False)
    class Handle:
        name: str

    first = Handle("a")
    assert first != Handle("a") and first == first
    assert hash(first) == object.__hash__(first)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.name = "b"


def test_a_class_keeps_its_own_repr_and_eq() -> None:
    @record
    class Own:
        name: str

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

    assert repr(Own("a")) == "own" and Own("a") == 3
    assert hash(Own("a")) == hash(Own("a"))


def test_a_record_does_not_repeat_itself_when_it_contains_itself() -> None:
    @record
    class Box:
        items: list[Any]

    box = Box([])
    box.items.append(box)
    assert repr(box) == "test_a_record_does_not_repeat_itself_when_it_contains_itself.<locals>.Box(items=[...])"


def test_what_a_record_does_not_support_is_refused_when_the_class_is_made() -> None:
    @dataclasses.dataclass(frozen=True)
    class Base:
        name: str

    with pytest.raises(TypeError, match="cannot inherit"):
        record(type("Sub", (Base,), {"__annotations__": {"size": "int"}}))
    with pytest.raises(TypeError, match="__post_init__"):
        record(type("Post", (), {"__annotations__": {"a": "int"}, "__post_init__": lambda self: None}))
    with pytest.raises(TypeError, match="positional"):
        record(type("Late", (), {"__annotations__": {"a": "int"}, "a": dataclasses.field(default=1, init=False)}))
    with pytest.raises(TypeError, match="positional"):
        record(type("Kw", (), {"__annotations__": {"a": "int"}, "a": dataclasses.field(kw_only=True)}))
    with pytest.raises(TypeError, match="__setattr__"):
        record(type("Own", (), {"__annotations__": {"a": "int"}, "__setattr__": lambda self, n, v: None}))
    with pytest.raises(TypeError, match="__hash__"):
        record(type("Hashed", (), {"__annotations__": {"a": "int"}, "__hash__": lambda self: 1}))
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        record(type("Order", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))
