# The whole GCP deployment of the retail pipeline (docs/deploy.md explains it):
#
#   gs://LANDING --finalize (Eventarc)--> ingest --> gs://LAKE --finalize (Eventarc)--> load
#     --> BigQuery raw tables + Pub/Sub "partition-loaded" --push subscription--> transform
#     --> one Cloud Run job execution (dbt build) per complete batch --> analytics marts --> Looker Studio
#
#   Cloud Scheduler --daily--> sweep (re-drives what the events missed); landing object archived
#     (deleted by a person) --Eventarc--> load (retract)
#
#   the dbt job, after each successful build --> the month's Excel report in gs://REPORTS/reports/
#
# Files by concern: apis.tf, storage.tf, bigquery.tf, pubsub.tf, iam.tf, functions.tf, dbt_job.tf,
# sweep.tf, monitoring.tf, kms.tf.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  prefix = var.name_prefix

  bucket_names = {
    landing          = coalesce(var.buckets.landing, "${var.project_id}-${local.prefix}-landing")
    lake             = coalesce(var.buckets.lake, "${var.project_id}-${local.prefix}-lake")
    function_sources = coalesce(var.buckets.function_sources, "${var.project_id}-${local.prefix}-function-sources")
    reports          = coalesce(var.buckets.reports, "${var.project_id}-${local.prefix}-reports")
  }

  datasets = {
    raw       = "${var.bigquery.dataset_prefix}_raw"
    pipeline  = "${var.bigquery.dataset_prefix}_pipeline"
    analytics = "${var.bigquery.dataset_prefix}_analytics"
  }

  function_names = {
    ingest    = "${local.prefix}-ingest"
    load      = "${local.prefix}-load"
    transform = "${local.prefix}-transform"
    sweep     = "${local.prefix}-sweep"
  }

  dbt_job_name = "${local.prefix}-dbt"

  artifact_repository_id = coalesce(var.artifact_registry.repository_id, "${local.prefix}-images")

  # The pipeline's settings (src/retail_pipeline/config.py), the same for every function.
  function_env = {
    RETAIL_PIPELINE_HOME        = "/tmp/retail-pipeline"
    RETAIL_PIPELINE_LANDING     = "gs://${local.bucket_names.landing}"
    RETAIL_PIPELINE_LAKE        = "gs://${local.bucket_names.lake}"
    RETAIL_PIPELINE_WAREHOUSE   = "bigquery://${var.project_id}/${var.bigquery.dataset_prefix}"
    RETAIL_PIPELINE_BUS         = "pubsub://${var.project_id}/${var.topic_name}"
    RETAIL_PIPELINE_TRANSFORM   = "cloudrun://${var.project_id}/${var.region}/${local.dbt_job_name}"
    RETAIL_PIPELINE_BQ_LOCATION = var.bigquery.location
    # the transform function holds a message that comes during a dbt build this long (under its timeout)
    RETAIL_PIPELINE_TRANSFORM_BUSY_WAIT_SECONDS = tostring(max(0, var.functions.transform.timeout_seconds - 60))
  }

  # What the dbt job's prod target reads (dbt/profiles.yml, dbt/models/staging/_sources.yml).
  dbt_env = {
    RETAIL_PIPELINE_GCP_PROJECT        = var.project_id
    RETAIL_PIPELINE_ANALYTICS_DATASET  = local.datasets.analytics
    RETAIL_PIPELINE_RAW_DATASET        = local.datasets.raw
    RETAIL_PIPELINE_PIPELINE_DATASET   = local.datasets.pipeline
    RETAIL_PIPELINE_BQ_LOCATION        = var.bigquery.location
    RETAIL_PIPELINE_MAX_DATA_AGE_HOURS = tostring(var.max_data_age_hours)
    DBT_SEND_ANONYMOUS_USAGE_STATS     = "false"
  }

  # What the job's report step reads after a successful build (src/retail_pipeline/config.py): the
  # month's Excel report goes under reports/ of the reports bucket; an empty value writes none.
  dbt_report_env = {
    RETAIL_PIPELINE_HOME      = "/tmp/retail-pipeline"
    RETAIL_PIPELINE_WAREHOUSE = "bigquery://${var.project_id}/${var.bigquery.dataset_prefix}"
    RETAIL_PIPELINE_REPORTS   = var.write_reports ? "gs://${local.bucket_names.reports}/reports/" : ""
  }

  labels = merge({ app = "retail-pipeline", managed-by = "terraform" }, var.labels)
}
