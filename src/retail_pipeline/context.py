"""The adapters a function uses, built once per process from the environment (injectable)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from .adapters import open_bus, open_store, open_warehouse
from .config import Settings
from .ports import MessageBus, ObjectStore, Warehouse


@dataclass
class Context:
    settings: Settings

    @cached_property
    def landing(self) -> ObjectStore:
        return open_store(self.settings.landing)

    @cached_property
    def lake(self) -> ObjectStore:
        return open_store(self.settings.lake)

    @cached_property
    def warehouse(self) -> Warehouse:
        warehouse = open_warehouse(self.settings.warehouse)
        warehouse.ensure_tables()
        return warehouse

    @cached_property
    def bus(self) -> MessageBus:
        return open_bus(self.settings)

    @cached_property
    def transformer(self):
        from .transform import open_transformer

        return open_transformer(self.settings)


_current: Context | None = None
_lock = threading.Lock()


def get() -> Context:
    """The process's context: made from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Context(Settings.from_env())
        return _current


def use(context: Context | None) -> None:
    """Install a context (tests, the local runtime); None makes the next get() read the environment."""
    global _current
    with _lock:
        _current = context
