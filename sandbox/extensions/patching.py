"""Idempotent monkey-patching of moto's classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_ORIGINAL_PREFIX = "_kajitori_original_"


def patch(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    """Replace `owner.name` by `make(original)`, once per class.

    The original attribute (function, property or absent: None) is kept on the class,
    so installing twice leaves the first patch in place instead of wrapping it again.
    """
    marker = _ORIGINAL_PREFIX + name
    if marker in owner.__dict__:
        return
    original = owner.__dict__[name] if name in owner.__dict__ else getattr(owner, name, None)
    setattr(owner, marker, original)
    setattr(owner, name, make(original))


def add(owner: type, name: str, value: Any) -> None:
    """Add a new attribute (typically a response handler for an action moto lacks)."""
    patch(owner, name, lambda _original: value)
