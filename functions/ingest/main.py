"""Cloud Function (2nd gen): a landing object was finalized → ingest it into the lake."""

import functions_framework
from cloudevents.http import CloudEvent

from retail_pipeline.events import STORAGE_FINALIZED
from retail_pipeline.logs import setup_function_logging
from retail_pipeline.stages import ingest_landing_object

setup_function_logging()


@functions_framework.cloud_event
def ingest(cloud_event: CloudEvent) -> dict:
    """Read, clean and partition the workbook named by a storage finalize event."""
    if cloud_event["type"] != STORAGE_FINALIZED:
        raise ValueError(f"expected {STORAGE_FINALIZED}, got {cloud_event['type']}")
    data = cloud_event.data
    return ingest_landing_object(bucket_name=data["bucket"], object_name=data["name"], generation=int(data["generation"]))
