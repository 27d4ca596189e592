"""Cloud Function (2nd gen): a "partition loaded" message → when the batch is complete, run dbt once."""

import functions_framework
from cloudevents.http import CloudEvent

from retail_pipeline import context
from retail_pipeline.events import PermanentEventError, acknowledge, pubsub_payload
from retail_pipeline.logs import setup_function_logging
from retail_pipeline.retract import RETRACT_KIND, rebuild_from_message
from retail_pipeline.stages import transform_batch

setup_function_logging()
context.warm_up()  # client libraries at start-up, not in the first event


@functions_framework.cloud_event
def transform(cloud_event: CloudEvent) -> dict:
    """Fan-in on the batch named in the message attributes; start one dbt run per complete batch."""
    try:
        data, attributes = pubsub_payload(cloud_event)
        if attributes.get("kind") == RETRACT_KIND:  # a retraction: rebuild the months it touched
            return rebuild_from_message(data, attributes)
        batch_id = attributes.get("batch_id") or data.get("batch_id")
        if not batch_id:
            raise PermanentEventError("the message carries no batch_id attribute")
        return transform_batch(batch_id, claim_key=attributes.get("replay", "initial"))
    except PermanentEventError as exc:  # logged with the event id and acknowledged: a retry cannot help
        return acknowledge(cloud_event, exc)
