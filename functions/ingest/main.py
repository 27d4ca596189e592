"""Cloud Function (2nd gen): a landing object was finalized → ingest it into the lake."""

import functions_framework
from cloudevents.http import CloudEvent

from retail_pipeline import context
from retail_pipeline.events import PermanentEventError, acknowledge, storage_object
from retail_pipeline.logs import setup_function_logging
from retail_pipeline.stages import ingest_landing_object

setup_function_logging()
context.warm_up()  # client libraries at start-up, not in the first event


@functions_framework.cloud_event
def ingest(cloud_event: CloudEvent) -> dict:
    """Read, clean and partition the workbook named by a storage finalize event."""
    try:
        bucket_name, object_name, generation = storage_object(cloud_event)
        return ingest_landing_object(bucket_name, object_name, generation)
    except PermanentEventError as exc:  # logged with the event id and acknowledged: a retry cannot help
        return acknowledge(cloud_event, exc)
