"""The adapters a process uses, built once from its settings (injectable for tests and the runtime)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from .adapters import open_bus, open_store, open_transformer, open_warehouse
from .config import Settings
from .ports import MessageBus, ObjectStore, Transformer, Warehouse


@dataclass
class Context:
    settings: Settings

    @cached_property
    def landing(self) -> ObjectStore:
        return open_store(self.settings.landing, self.settings)

    @cached_property
    def lake(self) -> ObjectStore:
        return open_store(self.settings.lake, self.settings)

    @cached_property
    def warehouse(self) -> Warehouse:
        return open_warehouse(self.settings, lake=self.lake)

    @cached_property
    def bus(self) -> MessageBus:
        return open_bus(self.settings)

    @cached_property
    def transformer(self) -> Transformer:
        return open_transformer(self.settings, warehouse=self.warehouse)

    def provision(self) -> None:
        """Buckets, topic and tables, where the platform does not make them (the local chains)."""
        self.landing.provision()
        self.lake.provision()
        self.bus.provision()
        self.warehouse.provision()
        reports = self.settings.reports_url
        if reports is not None:  # the reports bucket (Terraform's in GCP) or folder
            open_store(reports.store, self.settings).provision()


_current: Context | None = None
_lock = threading.Lock()


def warm_up() -> list[str]:
    """A function's start-up (its module's import): import the client libraries its adapters will use
    (see adapters.import_client_libraries). A setting in error is left to the first event, which
    reports it as it always does."""
    from .adapters import import_client_libraries
    from .config import SettingError

    try:
        return import_client_libraries(Settings.from_env())
    except SettingError:
        return []


def get() -> Context:
    """The process's context: made from the environment on first use (a function instance's edge)."""
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
