# Identities and least-privilege access. One service account per function and one for the dbt
# job; roles are granted on the specific bucket, dataset, topic, subscription, service or job.
# The only project-level grants are roles that exist only there: BigQuery job creation
# (bigquery.jobUser), receiving Eventarc events, build logs, and the Cloud Storage service agent
# publishing object events (what Eventarc storage triggers need). No primitive roles, no public members.

resource "google_service_account" "function" {
  for_each = local.function_names

  account_id   = "${local.prefix}-fn-${each.key}"
  display_name = "Retail pipeline: ${each.key} function"
  description  = "Runtime and trigger identity of the ${each.value} Cloud Function."
}

resource "google_service_account" "dbt" {
  account_id   = "${local.prefix}-dbt-job"
  display_name = "Retail pipeline: dbt job"
  description  = "Runtime identity of the ${local.dbt_job_name} Cloud Run job (dbt build --target prod)."
}

resource "google_service_account" "functions_build" {
  account_id   = "${local.prefix}-fn-build"
  display_name = "Retail pipeline: function builds"
  description  = "Cloud Build identity that turns the function bundles into images."
}

locals {
  function_members = { for name, sa in google_service_account.function : name => "serviceAccount:${sa.email}" }
  dbt_member       = "serviceAccount:${google_service_account.dbt.email}"
  build_member     = "serviceAccount:${google_service_account.functions_build.email}"
  pubsub_agent     = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

# --- Cloud Storage ---------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "ingest_reads_landing" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectViewer"
  member = local.function_members["ingest"]
}

# Ingest writes an error report next to a rejected file, and only there.
resource "google_storage_bucket_iam_member" "ingest_writes_rejected_reports" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectUser"
  member = local.function_members["ingest"]

  condition {
    title       = "rejected-reports-only"
    description = "Objects under rejected/ in the landing bucket."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.landing.name}/objects/rejected/\")"
  }
}

# Ingest writes partitions, quarantine files and manifests (and rewrites them on redelivery).
resource "google_storage_bucket_iam_member" "ingest_writes_lake" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.function_members["ingest"]
}

# Load reads lake objects; BigQuery load jobs read gs:// URIs as the caller.
resource "google_storage_bucket_iam_member" "load_reads_lake" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = local.function_members["load"]
}

resource "google_storage_bucket_iam_member" "functions_build_reads_sources" {
  bucket = google_storage_bucket.function_sources.name
  role   = "roles/storage.objectViewer"
  member = local.build_member
}

# --- BigQuery ------------------------------------------------------------------------------

resource "google_bigquery_dataset_iam_member" "load_writes_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.function_members["load"]
}

resource "google_bigquery_dataset_iam_member" "load_writes_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.function_members["load"]
}

resource "google_bigquery_dataset_iam_member" "transform_reads_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.function_members["transform"]
}

# Transform claims a batch (one dbt run per batch) in the pipeline dataset.
resource "google_bigquery_dataset_iam_member" "transform_writes_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.function_members["transform"]
}

resource "google_bigquery_dataset_iam_member" "dbt_reads_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.dbt_member
}

resource "google_bigquery_dataset_iam_member" "dbt_reads_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.dbt_member
}

resource "google_bigquery_dataset_iam_member" "dbt_writes_analytics" {
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.dbt_member
}

# Running a query or load job is a project-level permission (bigquery.jobs.create).
resource "google_project_iam_member" "bigquery_job_user" {
  for_each = {
    load      = local.function_members["load"]
    transform = local.function_members["transform"]
  }

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = each.value
}

resource "google_project_iam_member" "dbt_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = local.dbt_member
}

# --- Pub/Sub -------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "load_publishes" {
  topic  = google_pubsub_topic.partition_loaded.name
  role   = "roles/pubsub.publisher"
  member = local.function_members["load"]
}

# The Pub/Sub service agent moves undeliverable messages to the dead-letter topic ...
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letters" {
  topic  = google_pubsub_topic.partition_loaded_dead_letter.name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

# ... which needs it to acknowledge them on the source subscription,
resource "google_pubsub_subscription_iam_member" "pubsub_agent_forwards" {
  subscription = google_pubsub_subscription.transform.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# and it signs the push requests' OIDC tokens as the transform identity (needed explicitly in
# projects created before April 2021).
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.function["transform"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# --- Eventarc and invocation ---------------------------------------------------------------

# Eventarc storage triggers: the Cloud Storage service agent publishes the object events.
resource "google_project_iam_member" "gcs_agent_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# The trigger identities of the storage-triggered functions receive events.
resource "google_project_iam_member" "event_receiver" {
  for_each = {
    ingest = local.function_members["ingest"]
    load   = local.function_members["load"]
  }

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = each.value
}

# Each function may be invoked by its own trigger identity only (Eventarc / the push subscription).
resource "google_cloud_run_v2_service_iam_member" "ingest_invoker" {
  name     = google_cloudfunctions2_function.ingest.service_config[0].service
  location = var.region
  role     = "roles/run.invoker"
  member   = local.function_members["ingest"]
}

resource "google_cloud_run_v2_service_iam_member" "load_invoker" {
  name     = google_cloudfunctions2_function.load.service_config[0].service
  location = var.region
  role     = "roles/run.invoker"
  member   = local.function_members["load"]
}

resource "google_cloud_run_v2_service_iam_member" "transform_invoker" {
  name     = google_cloudfunctions2_function.transform.service_config[0].service
  location = var.region
  role     = "roles/run.invoker"
  member   = local.function_members["transform"]
}

# --- Cloud Run job -------------------------------------------------------------------------

# Transform starts executions of the dbt job with per-batch overrides, and reads their state.
resource "google_cloud_run_v2_job_iam_member" "transform_runs_dbt" {
  name     = google_cloud_run_v2_job.dbt.name
  location = var.region
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = local.function_members["transform"]
}

# --- Function builds -------------------------------------------------------------------------

resource "google_project_iam_member" "functions_build" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = local.build_member
}

# Cloud Functions stages each bundle in its own gcf-v2-sources-* bucket before the build reads it.
resource "google_project_iam_member" "functions_build_reads_staged_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = local.build_member

  condition {
    title       = "gcf-staged-sources-only"
    description = "Objects in the buckets Cloud Functions stages sources in."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-\")"
  }
}

resource "google_artifact_registry_repository_iam_member" "functions_build_writer" {
  repository = google_artifact_registry_repository.images.name
  location   = var.region
  role       = "roles/artifactregistry.writer"
  member     = local.build_member
}

# --- Audit ---------------------------------------------------------------------------------

# Who read or wrote which object: Data Access audit logs for Cloud Storage (instead of bucket
# usage logs). Authoritative for storage.googleapis.com's audit config in this project.
resource "google_project_iam_audit_config" "storage" {
  count = var.storage_data_access_logs ? 1 : 0

  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_READ"
  }

  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
