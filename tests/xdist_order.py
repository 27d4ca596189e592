"""How `make test` hands its groups to the pytest-xdist workers: `loadgroup`, with the whole emulator
chains (tests marked `chain`, each in a group of its own) kept apart. Used by tests/conftest.py."""

from __future__ import annotations

from typing import Any

from xdist.scheduler.loadgroup import LoadGroupScheduling

CHAIN_GROUP = "chain-"  #: the group of a test marked `chain` is this and its name: it alone
CHAIN_WEIGHT = 10  #: where the chains go in the order: among the groups of this many tests


class ChainsApart(LoadGroupScheduling):
    """xdist's `loadgroup`, except that a worker that has a chain to run gets a short group next,
    not another chain (while a short one is left).

    An xdist worker starts its last test only once it has the next one (or is told to stop), so a
    worker running a one-test group is always handed the next group in the queue. At the end of
    xdist's queue (groups ordered by size: one-test groups last) that put the chains one after the
    other on one worker while the others went idle: 2026-12-02 06:58, three chains (320 s) on one
    worker, the last running alone for 190 s."""

    def _assign_work_unit(self, node: Any) -> None:
        if self.has_chain(node):
            short = next((scope for scope in self.workqueue if not scope.startswith(CHAIN_GROUP)), None)
            if short is not None:
                self.workqueue.move_to_end(short, last=False)
        super()._assign_work_unit(node)

    def has_chain(self, node: Any) -> bool:
        """Whether a chain assigned to ``node`` has not finished."""
        return any(
            scope.startswith(CHAIN_GROUP) and not all(done.values())
            for scope, done in self.assigned_work.get(node, {}).items()
        )
