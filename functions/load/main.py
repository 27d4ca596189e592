"""Cloud Function (2nd gen): a lake object was finalized → load it into the warehouse, publish.
A landing object was archived (deleted by a person) → retract its rows (retail_pipeline.retract)."""

import functions_framework
from cloudevents.http import CloudEvent

from retail_pipeline import context
from retail_pipeline.events import STORAGE_ARCHIVED, STORAGE_FINALIZED, PermanentEventError, acknowledge, storage_object
from retail_pipeline.logs import setup_function_logging
from retail_pipeline.retract import landing_object_removed
from retail_pipeline.stages import load_lake_object

setup_function_logging()
context.warm_up()  # client libraries at start-up, not in the first event


@functions_framework.cloud_event
def load(cloud_event: CloudEvent) -> dict:
    """Load one lake partition (or manifest) with exactly-once effect; ignore other objects."""
    try:
        bucket_name, object_name, generation = storage_object(cloud_event, accept=(STORAGE_FINALIZED, STORAGE_ARCHIVED))
        if cloud_event["type"] == STORAGE_ARCHIVED:
            return landing_object_removed(bucket_name, object_name, generation)
        return load_lake_object(bucket_name, object_name, generation)
    except PermanentEventError as exc:  # logged with the event id and acknowledged: a retry cannot help
        return acknowledge(cloud_event, exc)
