"""A tiny name -> factory registry, used for backbones, initialisers and renderers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to factories. ``kind`` is used in error messages ("unknown backbone 'x'")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, **meta)
            return factory

        return deco

    def add(self, name: str, factory: Callable[..., T], **meta: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = Entry(name, factory, dict(meta))

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.entry(name).factory(*args, **kwargs)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries.values())
