"""The order `make test` hands its groups out in (tests/conftest.py, tests/xdist_order.py): a worker
with a whole emulator chain still to run gets a short group next, not another chain."""

from __future__ import annotations

from types import SimpleNamespace

from xdist_order import CHAIN_GROUP, ChainsApart


class Worker:
    """What the scheduler uses of an xdist worker: the tests it is sent, by index."""

    def __init__(self, collection: list[str]) -> None:
        self.collection = collection
        self.sent: list[str] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent += [self.collection[i] for i in indexes]


def _scheduler(units: dict[str, list[str]], workers: list[Worker]) -> ChainsApart:
    config = SimpleNamespace(getvalue=lambda name: [f"{len(workers)}*popen"] if name == "tx" else None)
    scheduler = ChainsApart(config)  # type: ignore[arg-type]
    for scope, tests in units.items():
        scheduler.workqueue[scope] = dict.fromkeys(tests, False)
    for worker in workers:
        scheduler.registered_collections[worker] = worker.collection  # type: ignore[index]
    return scheduler


def test_a_worker_with_a_chain_to_run_gets_a_short_group_next():
    chain_a, chain_b = CHAIN_GROUP + "a", CHAIN_GROUP + "b"
    units = {chain_a: ["t.py::a"], chain_b: ["t.py::b"], "small": ["s.py::x", "s.py::y"], "last": ["l.py::z"]}
    collection = [test for tests in units.values() for test in tests]
    one, two = Worker(collection), Worker(collection)
    scheduler = _scheduler(units, [one, two])

    scheduler._assign_work_unit(one)
    assert one.sent == ["t.py::a"] and scheduler.has_chain(one)
    scheduler._assign_work_unit(one)  # its chain is not done: the next short group, not chain b
    assert one.sent == ["t.py::a", "s.py::x", "s.py::y"]
    scheduler._assign_work_unit(two)  # a worker without a chain takes the queue's head: chain b
    assert two.sent == ["t.py::b"]

    scheduler.assigned_work[one][chain_a]["t.py::a"] = True  # chain a done: worker one is free of chains
    assert not scheduler.has_chain(one) and scheduler.has_chain(two)
    scheduler._assign_work_unit(two)  # only a short group is left anyway
    assert two.sent == ["t.py::b", "l.py::z"]


def test_with_only_chains_left_a_worker_takes_the_next_chain():
    units = {CHAIN_GROUP + "a": ["t.py::a"], CHAIN_GROUP + "b": ["t.py::b"]}
    collection = ["t.py::a", "t.py::b"]
    worker = Worker(collection)
    scheduler = _scheduler(units, [worker])
    scheduler._assign_work_unit(worker)
    scheduler._assign_work_unit(worker)
    assert worker.sent == ["t.py::a", "t.py::b"] and not scheduler.workqueue
