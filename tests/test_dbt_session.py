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
