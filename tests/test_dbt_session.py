"""The dbt worker's own loop (retail_pipeline.dbt_session.serve), without dbt."""

from __future__ import annotations

import os
from multiprocessing.connection import Connection

from retail_pipeline.dbt_session import serve


def test_the_loop_ends_quietly_when_the_pipeline_process_is_gone():
    """A pipeline process stopped while dbt worked (Ctrl-C, a SIGTERM): the worker's reply finds the
    pipe closed, and the worker ends without a traceback on the terminal they share."""
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    requests, to_worker = Connection(requests_read, writable=False), Connection(requests_write, readable=False)
    replies = Connection(replies_write, readable=False)
    to_worker.send("not a request")  # answered with a 'crashed' reply, at once and without dbt
    os.close(replies_read)  # the pipeline process is gone
    try:
        serve(requests, replies)  # returns, rather than raising BrokenPipeError
        assert not requests.poll()  # the request was taken
    finally:
        for conn in (requests, to_worker, replies):
            conn.close()


def test_new_workers_are_forked_from_one_server_each_with_the_environment_it_was_sent(tmp_path, monkeypatch):
    """One process, three new dbt workers (one per home, as after a worker ends): each is forked from
    the process's one fork server (dbt imported once), builds into its own home's warehouse with the
    environment built from the settings (not the calling process's), and ends when closed; a server
    that died is started again for the next worker."""
    import duckdb

    from loaded_batch import MONTHS, ingest_and_load
    from retail_pipeline import context
    from retail_pipeline.config import Settings
    from retail_pipeline.dbt_forkserver import alive, fork_server
    from retail_pipeline.dbt_worker import worker

    # what a worker must not see: the calling process's own value of a variable the profile reads
    monkeypatch.setenv("RETAIL_PIPELINE_DUCKDB_PATH", str(tmp_path / "not-this.duckdb"))
    worker().close()
    pids, servers = [], []
    try:
        for name in ("first", "second", "third"):
            (tmp_path / name).mkdir()
            ctx = context.Context(Settings.from_env(tmp_path / name / "home", environ={}))
            context.use(ctx)
            batch_id = ingest_and_load(ctx, tmp_path / name)
            result = ctx.transformer.run([batch_id], MONTHS)
            assert result.status == "success" and result.tests_failed == 0, result
            pids.append(worker()._pid)
            servers.append(fork_server()._process.pid)
            worker().close()
            path = ctx.settings.warehouse[len("duckdb://") :]
            with duckdb.connect(path, read_only=True) as con:
                loaded = con.execute("select count(*) from raw.sales_lines").fetchone()[0]
                assert con.execute("select count(*) from analytics.fct_sales_lines").fetchone()[0] == loaded > 0
            if name == "second":  # the server dies (killed, out of memory): the next home gets a new one
                fork_server()._process.kill()
                fork_server()._process.wait()
    finally:
        context.use(None)
        worker().close()
    assert not (tmp_path / "not-this.duckdb").exists()
    assert len(set(pids)) == 3 and not any(alive(pid) for pid in pids)  # a worker per home, each gone now
    assert servers[0] == servers[1] != servers[2]


def test_asking_for_a_worker_does_not_wait_for_the_server_and_a_worker_outliving_it_ends():
    """The pipeline process asks for its worker and goes on (the server answers only once it has
    imported dbt: seconds a `run` would otherwise wait before its first drop); a worker whose server
    has gone (the pipeline process exiting) ends when its pipes close."""
    import time

    from retail_pipeline.dbt_forkserver import ForkServer, alive

    server = ForkServer()
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    try:
        forked = server.fork(dict(os.environ), (requests_read, replies_write))
        assert forked.answer is None  # asked, not waited for
    finally:
        os.close(requests_read)
        os.close(replies_write)
    pid = forked.pid
    assert pid is not None and alive(pid)
    server.close()  # the server ends first, as at the pipeline process's exit
    assert alive(pid)  # the worker runs on, serving its pipes
    os.close(requests_write)  # the pipeline process's end of the pipes closes: the worker's loop ends
    os.close(replies_read)
    deadline = time.monotonic() + 60
    while alive(pid):
        assert time.monotonic() < deadline, f"worker {pid} still running"
        time.sleep(0.05)
