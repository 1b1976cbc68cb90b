"""Immutable records: the library's frozen dataclasses, made with one compile per class.

`@record` is `@dataclass(frozen=True)` (`eq=False` as dataclass's): the same fields (`field()`
with `default`, `default_factory`, `repr`, `compare`, `hash`), the same generated `__init__`,
`__repr__`, `__eq__`, `__hash__` and frozen `__setattr__`/`__delattr__`, and the class is a
dataclass to `dataclasses.fields`, `replace`, `asdict` and `is_dataclass`.

Why not dataclass itself: before Python 3.13, dataclass compiles each generated method with its own
`exec`, about 1 ms of CPU per frozen class, and a function imports 30 or more of them before its
first answer (issue 12's cold start). Here dataclass only collects the fields (no method made), the
other methods are closures over the field names, and `__init__`, the one compiled method, is
compiled on its first call. Not supported, and refused: `InitVar`,
`__post_init__`, `kw_only`, `slots`, `order`, and a record inheriting from another dataclass.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
import reprlib
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")


@overload
def record(cls: type[_T], /) -> type[_T]: ...


@overload
def record(*, eq: bool = True) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[_T] | None = None, /, *, eq: bool = True) -> Any:
    """Make `cls` a frozen dataclass (compared and hashed by its fields unless eq=False)."""

    def wrap(cls: type[_T]) -> type[_T]:
        return _make(cls, eq)

    return wrap if cls is None else wrap(cls)


def _make(cls: type[_T], eq: bool) -> type[_T]:
    if any(dataclasses.is_dataclass(base) for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__qualname__}: a record cannot inherit from another dataclass")
    if "__post_init__" in cls.__dict__:
        raise TypeError(f"{cls.__qualname__}: records have no __post_init__")
    # as dataclass: a class's own __init__, __repr__ or __eq__ is kept; its own __hash__ or frozen
    # methods are an error (dataclass raises for those too)
    own = set(cls.__dict__) & {"__init__", "__repr__", "__eq__"}
    clash = set(cls.__dict__) & {"__setattr__", "__delattr__"}
    # (a class that defines __eq__ gets __hash__ = None from Python itself: not its own hash)
    if eq and "__hash__" in cls.__dict__ and not (cls.__dict__["__hash__"] is None and "__eq__" in own):
        clash.add("__hash__")
    if clash:
        raise TypeError(f"{cls.__qualname__} defines {', '.join(sorted(clash))}: a record makes those")
    # Fields only: with every method turned off dataclass compiles nothing. (A class without a
    # docstring would have dataclass read object.__init__'s signature for one, which tokenizes it.)
    documented = bool(cls.__dict__.get("__doc__"))
    if not documented:
        cls.__doc__ = cls.__name__
    cls = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    fields = [f for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if any(f.kw_only is True or not f.init for f in fields):
        raise TypeError(f"{cls.__qualname__}: every field of a record is a positional __init__ argument")
    # dataclass's parameters as the class really is, for dataclasses' own checks and readers
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.frozen = True
    params.eq = eq

    names = [f.name for f in fields]
    if not documented:
        cls.__doc__ = f"{cls.__name__}({', '.join(names)})"
    env: dict[str, Any] = {"__object_setattr__": object.__setattr__, "__no_factory__": _NO_FACTORY}
    args, body = [], []
    seen_default = False
    for f in fields:
        if f.default is not dataclasses.MISSING:
            env[f"__default_{f.name}__"] = f.default
            args.append(f"{f.name}=__default_{f.name}__")
            value = f.name
            seen_default = True
        elif f.default_factory is not dataclasses.MISSING:
            env[f"__factory_{f.name}__"] = f.default_factory
            args.append(f"{f.name}=__no_factory__")
            value = f"__factory_{f.name}__() if {f.name} is __no_factory__ else {f.name}"
            seen_default = True
        else:
            if seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
            args.append(f.name)
            value = f.name
        body.append(f"  __object_setattr__(self, {f.name!r}, {value})")
    if "__init__" not in own:
        source = f"def __init__(self{''.join(', ' + a for a in args)}):\n" + "\n".join(body or ["  pass"])
        _attach(cls, "__init__", _deferred_init(cls, source, env, fields))
    # The other methods read the fields by name: closures, nothing to compile.
    shown = [f.name for f in fields if f.repr]
    if "__repr__" not in own:
        _attach(cls, "__repr__", reprlib.recursive_repr()(_repr_of(shown)))
    frozen = frozenset(names)
    _attach(cls, "__setattr__", _setattr_of(cls, frozen))
    _attach(cls, "__delattr__", _delattr_of(cls, frozen))
    if eq:
        compared = _values_of([f.name for f in fields if f.compare])
        hashed = _values_of([f.name for f in fields if (f.compare if f.hash is None else f.hash)])
        if "__eq__" not in own:
            _attach(cls, "__eq__", _eq_of(compared))
        _attach(cls, "__hash__", _hash_of(hashed))
    return cls


def _deferred_init(cls: type, source: str, env: dict[str, Any], fields: list[dataclasses.Field[Any]]
                   ) -> Callable[..., None]:
    """The record's `__init__`, compiled from `source` on its first call, when it also takes this
    one's place on the class. Compiling it was about half of what making a record cost, and most of
    the records a function declares are not made before its first answer, some never (issue 12's
    cold start). Its signature is the compiled one's from the start (`inspect.signature`)."""
    compiled: Callable[..., None] | None = None

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal compiled
        if compiled is None:  # two threads may both compile it: the same function, either one kept
            exec(source, env)  # noqa: S102
            compiled = env["__init__"]
            _attach(cls, "__init__", compiled)
        compiled(self, *args, **kwargs)

    parameter = inspect.Parameter
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [parameter("self", parameter.POSITIONAL_OR_KEYWORD)]
        + [parameter(f.name, parameter.POSITIONAL_OR_KEYWORD,
                     default=f.default if f.default is not dataclasses.MISSING
                     else _NO_FACTORY if f.default_factory is not dataclasses.MISSING else parameter.empty)
           for f in fields])
    return __init__


def _attach(cls: type, name: str, function: Any) -> None:
    function.__qualname__, function.__module__ = f"{cls.__qualname__}.{name}", cls.__module__
    setattr(cls, name, function)


def _values_of(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the tuple of an object's `names` attributes (in C: operator.attrgetter)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)


def _repr_of(names: list[str]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    return __repr__


def _eq_of(values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    return __eq__


def _hash_of(values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _setattr_of(cls: type, fields: frozenset[str]) -> Callable[[Any, str, Any], None]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in fields:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

    return __setattr__


def _delattr_of(cls: type, fields: frozenset[str]) -> Callable[[Any, str], None]:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in fields:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    return __delattr__


class _NoFactory:
    """The default of a field with a default_factory: the factory runs when the caller gave none."""

    def __repr__(self) -> str:
        return "<factory>"


_NO_FACTORY = _NoFactory()
