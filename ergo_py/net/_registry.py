"""Which Python types may cross the wire, under which stable names.

A type crosses only if it was registered here (`register_type`), or is plain data
(None, bool, int, float, str, bytes, list, dict, tuple, set, frozenset). The
registration checks, once, that every field's annotated type can be encoded, so
a mistake shows at import time rather than as a dropped message in production.
Registered names are the contract between nodes: they default to
`module.qualname` and can be fixed with `name=` so that moving a class does not
break a running cluster.

This module must never decode or encode bytes itself (that is `_codec`), import
trio, or accept a type it cannot rebuild exactly as it was sent.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import types
import typing
from collections import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import attrs

from ._errors import RegistrationError

__all__ = ["REGISTRY", "Registry", "TypeEntry", "register_type"]

T = TypeVar("T", bound=type)

_PLAIN_TYPES: frozenset[Any] = frozenset({int, float, str, bytes, bool, type(None), None, Any, object})
_CONTAINERS: frozenset[Any] = frozenset(
    {
        list,
        dict,
        tuple,
        set,
        frozenset,
        abc.Sequence,
        abc.MutableSequence,
        abc.Mapping,
        abc.MutableMapping,
        abc.Set,
        abc.MutableSet,
        abc.Collection,
        abc.Iterable,
    }
)


@dataclass(frozen=True, slots=True)
class TypeEntry:
    """How one registered class is taken apart and rebuilt.

    `fields` are attribute names read (in order) to encode an instance; the class
    is rebuilt by calling it with those values positionally. A "custom" entry has
    its own `to_wire` / `from_wire` instead (a compact form for hot types).
    """

    name: str
    cls: type
    fields: tuple[str, ...]
    kind: str  # "dataclass", "attrs", "exception", "enum" or "custom"
    to_wire: Callable[[Any], list[Any]] | None = None
    from_wire: Callable[[list[Any]], Any] | None = None
    _getter: Callable[[Any], Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind in ("dataclass", "attrs") or (self.kind == "exception" and self.fields):
            if len(self.fields) == 1:
                one = operator.attrgetter(self.fields[0])
                object.__setattr__(self, "_getter", lambda obj: (one(obj),))
            elif self.fields:
                object.__setattr__(self, "_getter", operator.attrgetter(*self.fields))

    def take_apart(self, obj: Any) -> list[Any]:
        getter = self._getter
        if getter is not None:
            return [self.name, *getter(obj)]
        if self.kind == "custom":
            return [self.name, *self.to_wire(obj)]  # type: ignore[misc]
        if self.kind == "enum":
            return [self.name, obj.value]
        if self.kind == "exception" and not self.fields:
            return [self.name, *obj.args]
        return [self.name]

    def rebuild(self, values: list[Any]) -> Any:
        if self.kind == "custom":
            return self.from_wire(values)  # type: ignore[misc]
        if self.kind == "enum":
            if len(values) != 1:
                raise ValueError(f"expected 1 value, got {len(values)}")
            return self.cls(values[0])
        if self.fields and len(values) != len(self.fields):
            raise ValueError(f"expected {len(self.fields)} fields, got {len(values)}")
        return self.cls(*values)


class Registry:
    """The name <-> class table shared by every codec of a process.

    One instance (`REGISTRY`) serves the whole program: nodes in one OS process
    must agree on names exactly as nodes in different processes do.
    """

    def __init__(self) -> None:
        self.by_name: dict[str, TypeEntry] = {}
        self.by_type: dict[type, TypeEntry] = {}
        # Bumped at every registration so codecs know to rebuild their hook tables.
        self.version = 0

    def register(
        self,
        cls: type,
        *,
        name: str | None = None,
        fields: tuple[str, ...] | None = None,
        wire: tuple[Callable[[Any], list[Any]], Callable[[list[Any]], Any]] | None = None,
    ) -> type:
        """Register `cls` under `name` (default `module.qualname`); returns `cls`."""
        if not isinstance(cls, type):
            raise RegistrationError(repr(cls), "only classes can be registered")
        reg_name = name if name is not None else f"{cls.__module__}.{cls.__qualname__}"
        if not isinstance(reg_name, str) or not reg_name:
            raise RegistrationError(cls.__qualname__, f"the name must be a non-empty string, not {reg_name!r}")
        if wire is not None:
            to_wire, from_wire = wire
            if not (callable(to_wire) and callable(from_wire)) or fields is not None:
                raise RegistrationError(cls.__qualname__, "wire= takes (to_wire, from_wire) callables, without fields=")
            entry = TypeEntry(reg_name, cls, (), "custom", to_wire, from_wire)
        else:
            entry = self._entry_for(cls, reg_name, fields)
        known = self.by_name.get(reg_name)
        if known is not None and known.cls is not cls:
            raise RegistrationError(
                cls.__qualname__,
                f"the name {reg_name!r} is already used by {known.cls.__module__}.{known.cls.__qualname__}; "
                "pass another name= to register_type",
            )
        known_type = self.by_type.get(cls)
        if known_type is not None and known_type.name != reg_name:
            raise RegistrationError(cls.__qualname__, f"already registered under the name {known_type.name!r}")
        self.by_name[reg_name] = entry
        self.by_type[cls] = entry
        self.version += 1
        return cls

    def _entry_for(self, cls: type, reg_name: str, fields: tuple[str, ...] | None) -> TypeEntry:
        if issubclass(cls, enum.Enum):
            for member in cls:
                self._check_value_type(cls, "value", type(member.value))
            return TypeEntry(reg_name, cls, (), "enum")
        if dataclasses.is_dataclass(cls):
            names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
            self._check_fields(cls, names)
            return TypeEntry(reg_name, cls, fields or names, "dataclass")
        if attrs.has(cls):
            # Rebuilt positionally, so every init field is sent in order (aliases do not matter).
            names = tuple(a.name for a in attrs.fields(cls) if a.init)
            self._check_fields(cls, names)
            return TypeEntry(reg_name, cls, fields or names, "attrs")
        if issubclass(cls, BaseException):
            # Exception fields are checked when an instance is encoded (they are not annotated).
            return TypeEntry(reg_name, cls, fields or (), "exception")
        raise RegistrationError(
            cls.__qualname__,
            "only dataclasses, attrs classes, enums and exceptions can be registered "
            "(the codec must know the fields to rebuild an instance)",
        )

    def _check_fields(self, cls: type, names: tuple[str, ...]) -> None:
        try:
            hints = typing.get_type_hints(cls, localns={cls.__name__: cls}, include_extras=True)
        except Exception as exc:
            raise RegistrationError(
                cls.__qualname__,
                f"cannot resolve the field annotations ({exc}); define or register the field types before this class",
            ) from exc
        for field_name in names:
            if field_name not in hints:
                raise RegistrationError(cls.__qualname__, f"field {field_name!r} has no type annotation")
            problem = self._annotation_problem(hints[field_name], cls)
            if problem is not None:
                raise RegistrationError(
                    cls.__qualname__, f"field {field_name!r} of type {hints[field_name]!r} {problem}"
                )

    def _check_value_type(self, cls: type, what: str, tp: Any) -> None:
        problem = self._annotation_problem(tp, cls)
        if problem is not None:
            raise RegistrationError(cls.__qualname__, f"{what} of type {tp!r} {problem}")

    def _annotation_problem(self, tp: Any, owner: type) -> str | None:
        """None if values annotated `tp` can be encoded, else why not."""
        if tp in _PLAIN_TYPES or tp in _CONTAINERS or tp is owner:
            return None
        if isinstance(tp, TypeVar):
            return None  # checked on each encode, like Any
        if isinstance(tp, type):
            if tp in self.by_type or issubclass(tp, BaseException):
                # Unregistered exceptions still cross, as RemoteError.
                return None
            return "cannot cross the wire: register that type first (ergo_py.net.register_type)"
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            return self._annotation_problem(args[0], owner)
        if origin is typing.Literal:
            for value in args:
                if type(value) not in (int, str, bytes, bool, type(None)):
                    return f"has a literal {value!r} that cannot cross the wire"
            return None
        if origin is typing.Union or origin is types.UnionType:
            for arg in args:
                problem = self._annotation_problem(arg, owner)
                if problem is not None:
                    return problem
            return None
        if origin in _CONTAINERS:
            for arg in args:
                if arg is Ellipsis:
                    continue
                problem = self._annotation_problem(arg, owner)
                if problem is not None:
                    return problem
            return None
        return "cannot cross the wire (not plain data nor a registered type)"


REGISTRY = Registry()


_Wire = tuple[Callable[[Any], list[Any]], Callable[[list[Any]], Any]]


@overload
def register_type(
    cls: T, /, *, name: str | None = None, fields: tuple[str, ...] | None = None, wire: _Wire | None = None
) -> T: ...


@overload
def register_type(
    cls: None = None, /, *, name: str | None = None, fields: tuple[str, ...] | None = None, wire: _Wire | None = None
) -> Callable[[T], T]: ...


def register_type(
    cls: Any = None, /, *, name: str | None = None, fields: tuple[str, ...] | None = None, wire: _Wire | None = None
) -> Any:
    """Let a class cross the wire between nodes (a class decorator).

    Use as `@register_type` or `@register_type(name="myapp.Order")`. Dataclasses
    and attrs classes travel field by field and must annotate every field with an
    encodable type (plain data, containers of them, or registered types); this is
    checked now, so a forgotten registration fails at import instead of dropping
    messages later. Enums travel by value. Exceptions travel by `args` (or by the
    attributes listed in `fields`, for exceptions whose constructor arguments are
    kept as attributes); an unregistered exception arrives as a `RemoteError`.

    Every node must register the same classes under the same names; the name is
    the wire contract, so give one explicitly when the module path may change.

    `wire=(to_wire, from_wire)` gives a hot type its own compact form instead:
    `to_wire(obj)` returns a list of encodable values, `from_wire(values)` rebuilds
    the object and must validate them (a peer's bytes), raising ValueError or
    TypeError on anything malformed; the codec turns that into a DecodeError.
    """
    if cls is None:

        def decorate(inner: T) -> T:
            REGISTRY.register(inner, name=name, fields=fields, wire=wire)
            return inner

        return decorate
    return REGISTRY.register(cls, name=name, fields=fields, wire=wire)
