"""A client made on first use: opening an adapter never needs credentials or the network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LazyClient:
    """Holds a client, or the way to make it; ``get()`` makes it once."""

    def __init__(self, client: Any = None, factory: Callable[[], Any] | None = None) -> None:
        if client is None and factory is None:
            raise ValueError("a client or a factory that makes one")
        self._client = client
        self._factory = factory

    def get(self) -> Any:
        if self._client is None:
            assert self._factory is not None
            self._client = self._factory()
        return self._client
