# Outputs: where to drop workbooks, where the data lands, and the Looker Studio link.

locals {
  # Looker Studio Linking API (https://developers.google.com/looker-studio/integrate/linking-api):
  # a new report with one BigQuery data source per mart of the analytics dataset (aliases ds0, ds1,
  # ... in this order). `retail-pipeline looker-url` builds the same URL: the parameters below, in
  # this order, each value encoded like Python's urllib.parse.quote_plus (Terraform's urlencode).
  looker_studio_base_url = "https://lookerstudio.google.com/reporting/create"
  looker_studio_marts = [
    "mart_revenue_daily",
    "mart_revenue_monthly",
    "mart_revenue_by_country",
    "mart_product_performance",
    "mart_customer_rfm",
    "mart_cohort_retention",
    "mart_data_quality",
    "mart_invoices",
    "mart_product_sales_daily",
  ]
  looker_studio_params = concat(
    [["r.reportName", var.looker_studio_report_name]],
    concat([for i, table in local.looker_studio_marts : [
      ["ds.ds${i}.connector", "bigQuery"],
      ["ds.ds${i}.type", "TABLE"],
      ["ds.ds${i}.projectId", var.project_id],
      ["ds.ds${i}.datasetId", local.datasets.analytics],
      ["ds.ds${i}.tableId", table],
      ["ds.ds${i}.datasourceName", table],
    ]]...),
  )
  looker_studio_url = "${local.looker_studio_base_url}?${join("&", [for p in local.looker_studio_params : "${p[0]}=${urlencode(p[1])}"])}"
}

output "landing_bucket" {
  description = "Drop workbooks here: gsutil cp book.xlsx gs://LANDING_BUCKET/"
  value       = google_storage_bucket.landing.name
}

output "reports_bucket" {
  description = "The monthly Excel reports the dbt job writes after each successful build: gs://REPORTS_BUCKET/reports/online-retail-YYYY-MM.xlsx (with write_reports)."
  value       = google_storage_bucket.reports.name
}

output "lake_bucket" {
  description = "Partitioned Parquet, quarantine files and batch manifests written by ingest."
  value       = google_storage_bucket.lake.name
}

output "function_source_bucket" {
  description = "Bucket holding the packaged function bundles."
  value       = google_storage_bucket.function_sources.name
}

output "datasets" {
  description = "BigQuery dataset ids: raw tables, pipeline bookkeeping, dbt models."
  value = {
    raw       = google_bigquery_dataset.raw.dataset_id
    pipeline  = google_bigquery_dataset.pipeline.dataset_id
    analytics = google_bigquery_dataset.analytics.dataset_id
  }
}

output "bigquery_location" {
  description = "Location of the BigQuery datasets."
  value       = var.bigquery.location
}

output "partition_loaded_topic" {
  description = "Pub/Sub topic of \"partition loaded\" messages."
  value       = google_pubsub_topic.partition_loaded.name
}

output "dead_letter_topic" {
  description = "Where messages go that the transform function could not take after max_delivery_attempts."
  value       = google_pubsub_topic.partition_loaded_dead_letter.name
}

output "transform_subscription" {
  description = "Push subscription that feeds the transform function (seek it back to replay)."
  value       = google_pubsub_subscription.transform.name
}

output "function_names" {
  description = "Cloud Function (2nd gen) names by stage."
  value = {
    ingest    = google_cloudfunctions2_function.ingest.name
    load      = google_cloudfunctions2_function.load.name
    transform = google_cloudfunctions2_function.transform.name
    sweep     = google_cloudfunctions2_function.sweep.name
  }
}

output "sweep_schedule" {
  description = "Cloud Scheduler job that calls the sweep function, and its schedule (run it now: gcloud scheduler jobs run NAME --location REGION)."
  value = {
    job      = google_cloud_scheduler_job.sweep.name
    schedule = google_cloud_scheduler_job.sweep.schedule
  }
}

output "alert_policies" {
  description = "Cloud Monitoring alert policies (failed dbt runs, dead letters, function errors) and the notification channel they use, if any."
  value = {
    dbt_failed      = google_monitoring_alert_policy.dbt_failed.name
    dead_letters    = google_monitoring_alert_policy.dead_letters.name
    function_errors = google_monitoring_alert_policy.function_errors.name
    channels        = local.notification_channels
  }
}

output "kms_keys" {
  description = "Cloud KMS keys in use (null when var.cmek is off): for the buckets, topics and registry, and for the BigQuery datasets."
  value = local.cmek_enabled ? {
    regional = local.kms_key
    bigquery = local.kms_key_bigquery
  } : null
}

output "dbt_job_name" {
  description = "Cloud Run job that runs dbt build --target prod."
  value       = google_cloud_run_v2_job.dbt.name
}

output "docker_repository" {
  description = "Artifact Registry path for images: REGION-docker.pkg.dev/PROJECT/REPOSITORY."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "pipeline_env" {
  description = "The settings the functions run with (RETAIL_PIPELINE_*): export them to point the CLI at the deployment."
  value       = local.function_env
}

output "looker_studio_url" {
  description = "Looker Studio Linking API URL: opens a new report with one BigQuery data source per mart of the analytics dataset."
  value       = local.looker_studio_url
}
