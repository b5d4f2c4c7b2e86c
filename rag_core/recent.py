"""The most recently used values by key within a budget: a count, or bytes. Thread-safe."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """`found(keys)` the kept values of keys, `keep(values)` new ones; the least recently used go first once
    the values' total `size` (1 each by default: a count) is over `budget`."""

    def __init__(self, budget: int, size: Callable[[V], int] = lambda _: 1) -> None:
        self.budget = budget
        self.used = 0
        self._size = size
        self._values: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def found(self, keys: Iterable[str]) -> dict[str, V]:
        out: dict[str, V] = {}
        with self._lock:
            for key in keys:
                value = self._values.get(key)
                if value is not None:
                    self._values.move_to_end(key)
                    out[key] = value
        return out

    def keep(self, values: Mapping[str, V]) -> None:
        with self._lock:
            for key, value in values.items():
                if key not in self._values:
                    self._values[key] = value
                    self.used += self._size(value)
            while self._values and self.used > self.budget:
                _, dropped = self._values.popitem(last=False)
                self.used -= self._size(dropped)

    def forget(self, key: str) -> None:
        with self._lock:
            dropped = self._values.pop(key, None)
            if dropped is not None:
                self.used -= self._size(dropped)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self.used = 0

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._values)

    def __len__(self) -> int:
        return len(self._values)
