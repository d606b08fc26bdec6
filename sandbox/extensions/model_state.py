"""State the extensions keep on moto's model objects.

moto declares the attributes it uses; the extensions add two kinds of their own:
bookkeeping (prefixed `kajitori_`, never serialized) and API fields moto does not model
(`deployment_configuration`, `pending_modified_values`, ...), which moto's response
serializer finds by their snake_case name. Both live in the object's `__dict__`, so they
go away with the object when the sandbox resets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")

_PREFIX = "kajitori_"


def get_or_create(obj: object, name: str, factory: Callable[[], T]) -> T:
    store = vars(obj)
    key = _PREFIX + name
    if key not in store:
        store[key] = factory()
    return cast(T, store[key])


def get(obj: object, name: str, default: T) -> T:
    return cast(T, vars(obj).get(_PREFIX + name, default))


def put(obj: object, name: str, value: object) -> None:
    vars(obj)[_PREFIX + name] = value


def has(obj: object, name: str) -> bool:
    return _PREFIX + name in vars(obj)


def set_api_field(obj: object, name: str, value: object) -> None:
    """Set a response field moto's model lacks (or types differently)."""
    vars(obj)[name] = value


def api_field(obj: object, name: str, default: Any = None) -> Any:
    return vars(obj).get(name, default)
