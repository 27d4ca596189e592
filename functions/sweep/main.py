"""Cloud Function (2nd gen, HTTP): Cloud Scheduler calls it; one sweep, a JSON summary back.

The sweep re-drives what the events missed (see retail_pipeline.sweep): it rewrites landing and
lake objects (their finalize events then deliver them again) and publishes messages for batches
never transformed or stuck; it calls no other function itself.
"""

import functions_framework
from flask import Request

from retail_pipeline import context
from retail_pipeline.logs import setup_function_logging
from retail_pipeline.sweep import sweep as run_sweep

setup_function_logging()
context.warm_up()  # client libraries at start-up, not in the first event


@functions_framework.http
def sweep(request: Request) -> tuple[dict, int]:
    """POST (Cloud Scheduler): sweep with the configured grace period; ``?dry_run=1`` only reports."""
    dry_run = request.args.get("dry_run", "") in ("1", "true", "yes")
    report = run_sweep(context.get(), dry_run=dry_run)
    return report.as_dict(), 200
