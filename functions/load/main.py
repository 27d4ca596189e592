"""Cloud Function (2nd gen): a lake object was finalized → load it into the warehouse, publish."""

import functions_framework
from cloudevents.http import CloudEvent

from retail_pipeline.events import STORAGE_FINALIZED
from retail_pipeline.logs import setup_function_logging
from retail_pipeline.stages import load_lake_object

setup_function_logging()


@functions_framework.cloud_event
def load(cloud_event: CloudEvent) -> dict:
    """Load one lake partition (or manifest) with exactly-once effect; ignore other objects."""
    if cloud_event["type"] != STORAGE_FINALIZED:
        raise ValueError(f"expected {STORAGE_FINALIZED}, got {cloud_event['type']}")
    data = cloud_event.data
    return load_lake_object(bucket_name=data["bucket"], object_name=data["name"], generation=int(data["generation"]))
