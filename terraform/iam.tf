# Identities and least-privilege access. One service account per function and one for the dbt
# job; roles are granted on the specific bucket, dataset, topic, subscription, service or job.
# The only project-level grants are roles that exist only there: BigQuery job creation
# (bigquery.jobUser), receiving Eventarc events, build logs, the Eventarc service agent's own
# role, and the Cloud Storage service agent publishing object events (what Eventarc storage
# triggers need). No primitive roles, no public members, no dataset-creating role: every table is
# created by Terraform (bigquery.tf) and only looked up at runtime.
#
# Every grant names the calls that need it. docs/deploy.md has the same as a table
# (component -> service account -> role -> calls).

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
  eventarc_agent   = "serviceAccount:${google_project_service_identity.eventarc.email}"
  gcs_agent        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"

  # The identities Pub/Sub pushes as: the two Eventarc storage triggers (Eventarc delivers through
  # a Pub/Sub push subscription of its own) and the transform push subscription (pubsub.tf).
  push_identities = {
    ingest    = google_service_account.function["ingest"].name
    load      = google_service_account.function["load"].name
    transform = google_service_account.function["transform"].name
  }
}

# --- Cloud Storage ---------------------------------------------------------------------------

# Ingest downloads the finalized workbook: storage.objects.get (Blob.reload / download_to_filename).
resource "google_storage_bucket_iam_member" "ingest_reads_landing" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectViewer"
  member = local.function_members["ingest"]
}

# Ingest writes an error report next to a rejected file, and only there:
# storage.objects.create (+ .delete when a redelivery rewrites the same report).
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

# Ingest writes partitions, quarantine files and manifests, and rewrites them on redelivery:
# storage.objects.create, .delete (overwrite), .get and .list (what is already there).
resource "google_storage_bucket_iam_member" "ingest_writes_lake" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.function_members["ingest"]
}

# Load reads the finalized lake object's metadata (storage.objects.get), and the BigQuery load job
# reads the gs:// URI as the caller (storage.objects.get, storage.objects.list).
resource "google_storage_bucket_iam_member" "load_reads_lake" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = local.function_members["load"]
}

# Transform claims a batch by creating _claims/transform/<batch>/<key> with ifGenerationMatch=0
# (storage.objects.create) and releases the claim on failure (storage.objects.delete). The
# condition keeps it out of the data: it can write nothing else in the lake.
resource "google_storage_bucket_iam_member" "transform_writes_claims" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.function_members["transform"]

  condition {
    title       = "transform-claims-only"
    description = "Claim objects under _claims/transform/ in the lake bucket."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.lake.name}/objects/_claims/transform/\")"
  }
}

# The sweep compares the landing bucket with the batches and re-drives a workbook the events missed
# by rewriting it onto itself (a new generation with the same bytes and metadata, whose finalize
# event ingests it): storage.objects.list, .get, .create and .delete (the overwrite).
resource "google_storage_bucket_iam_member" "sweep_rewrites_landing" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectUser"
  member = local.function_members["sweep"]
}

# The same for the lake's objects the ledger lacks, whose finalize event loads them
# (storage.objects.list, .get, storage.objects.create, storage.objects.delete).
resource "google_storage_bucket_iam_member" "sweep_rewrites_lake" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.function_members["sweep"]
}

# The load function retracts a deleted workbook only when no live generation of it is left: it
# reads the landing object's metadata (storage.objects.get).
resource "google_storage_bucket_iam_member" "load_reads_landing" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectViewer"
  member = local.function_members["load"]
}

# The dbt job writes the month's Excel report after a successful build, under reports/ only:
# storage.objects.create (+ .delete when a later build rewrites the month's report).
resource "google_storage_bucket_iam_member" "dbt_writes_reports" {
  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectUser"
  member = local.dbt_member

  condition {
    title       = "reports-only"
    description = "Objects under reports/ in the reports bucket."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.reports.name}/objects/reports/\")"
  }
}

# Function builds read the uploaded bundle (storage.objects.get).
resource "google_storage_bucket_iam_member" "functions_build_reads_sources" {
  bucket = google_storage_bucket.function_sources.name
  role   = "roles/storage.objectViewer"
  member = local.build_member
}

# --- BigQuery ------------------------------------------------------------------------------

# Load applies a lake object in one transaction: DELETE/INSERT on the raw tables
# (bigquery.tables.get, .getData, .updateData).
resource "google_bigquery_dataset_iam_member" "load_writes_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.function_members["load"]
}

# Load reads and writes the ledger (bigquery.tables.getData, .updateData) and loads each object
# into a staging table it then drops (bigquery.tables.create, .updateData, .delete).
resource "google_bigquery_dataset_iam_member" "load_writes_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.function_members["load"]
}

# Transform compares the loaded rows with the manifests in raw.batches (bigquery.tables.getData).
resource "google_bigquery_dataset_iam_member" "transform_reads_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.function_members["transform"]
}

# Transform reads the ledger and writes its claim row into transform_runs
# (bigquery.tables.getData, .updateData).
resource "google_bigquery_dataset_iam_member" "transform_writes_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.function_members["transform"]
}

# dbt reads the raw tables, its sources (bigquery.tables.get, .getData).
resource "google_bigquery_dataset_iam_member" "dbt_reads_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.dbt_member
}

# The dbt job reads the ledger (source freshness, reconciliation) and records its run's outcome
# in transform_runs: state, models built, tests passed/failed, error, execution
# (bigquery.tables.getData, .updateData).
resource "google_bigquery_dataset_iam_member" "dbt_writes_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.dbt_member
}

# dbt builds its models: create/replace/merge tables and views (bigquery.tables.create, .update,
# .updateData, .delete, .getData).
resource "google_bigquery_dataset_iam_member" "dbt_writes_analytics" {
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.dbt_member
}

# The sweep reads the manifests in raw.batches (bigquery.tables.getData) ...
resource "google_bigquery_dataset_iam_member" "sweep_reads_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.function_members["sweep"]
}

# ... and the ledger, transform_runs and retractions, to find objects never loaded and batches
# never transformed or stuck (bigquery.tables.getData). It writes no table: it re-drives.
resource "google_bigquery_dataset_iam_member" "sweep_reads_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.function_members["sweep"]
}

# Every query, DML, transaction and load job is a job in the project: bigquery.jobs.create exists
# only at project level. roles/bigquery.jobUser holds nothing else that matters here (no
# bigquery.datasets.create: datasets and tables come from Terraform).
resource "google_project_iam_member" "bigquery_job_user" {
  for_each = {
    load      = local.function_members["load"]
    transform = local.function_members["transform"]
    sweep     = local.function_members["sweep"]
  }

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = each.value
}

# dbt's queries and the outcome row are jobs too (bigquery.jobs.create).
resource "google_project_iam_member" "dbt_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = local.dbt_member
}

# --- Pub/Sub -------------------------------------------------------------------------------

# Load publishes "partition loaded" (pubsub.topics.publish).
resource "google_pubsub_topic_iam_member" "load_publishes" {
  topic  = google_pubsub_topic.partition_loaded.name
  role   = "roles/pubsub.publisher"
  member = local.function_members["load"]
}

# The sweep publishes a message for a complete batch never transformed, or one whose run never
# finished (pubsub.topics.publish).
resource "google_pubsub_topic_iam_member" "sweep_publishes" {
  topic  = google_pubsub_topic.partition_loaded.name
  role   = "roles/pubsub.publisher"
  member = local.function_members["sweep"]
}

# --- Service agents ------------------------------------------------------------------------

# The Cloud Storage service agent publishes the object events Eventarc storage triggers carry
# (pubsub.topics.publish on the topics Eventarc creates; project level because Eventarc names them).
resource "google_project_iam_member" "gcs_agent_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = local.gcs_agent
}

# The Eventarc service agent creates and manages each trigger's transport: a Pub/Sub topic and
# subscription (pubsub.topics.create, pubsub.subscriptions.create) in this project. Google grants this role when the API is enabled,
# but on a fresh project the grant can lag the first trigger; granting it explicitly (idempotent)
# lets time_sleep.agents_ready (apis.tf) wait for a grant Terraform knows about.
resource "google_project_iam_member" "eventarc_agent" {
  #checkov:skip=CKV_GCP_49:The member is Google's Eventarc service agent and the role is its own service agent role, which Google grants it when the API is enabled; no user or workload identity receives it.
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  member  = local.eventarc_agent
}

# The Pub/Sub service agent moves undeliverable messages to the dead-letter topic
# (pubsub.topics.publish) ...
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letters" {
  topic  = google_pubsub_topic.partition_loaded_dead_letter.name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

# ... which needs it to acknowledge them on the source subscription (pubsub.subscriptions.consume),
resource "google_pubsub_subscription_iam_member" "pubsub_agent_forwards" {
  subscription = google_pubsub_subscription.transform.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# and it signs each push request's OIDC token as the push identity
# (iam.serviceAccounts.getOpenIdToken): the transform subscription and the two Eventarc storage
# triggers. Needed explicitly in projects whose Pub/Sub agent predates April 2021; granted on each
# identity instead of the project-wide grant the documentation shows.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  for_each = local.push_identities

  service_account_id = each.value
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# --- Eventarc and invocation ---------------------------------------------------------------

# The trigger identities of the storage-triggered functions receive events, the load identity
# also for the landing-removed (retract) trigger (eventarc.events.receiveEvent; a project-level
# role only).
resource "google_project_iam_member" "event_receiver" {
  for_each = {
    ingest = local.function_members["ingest"]
    load   = local.function_members["load"]
  }

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = each.value
}

# Each function may be invoked by its own trigger identity only: the push request carries an
# OIDC token of that identity (run.routes.invoke on the function's Cloud Run service).
resource "google_cloud_run_v2_service_iam_member" "ingest_invoker" {
  name     = google_cloudfunctions2_function.ingest.service_config[0].service
  location = var.region
  role     = "roles/run.invoker"
  member   = local.function_members["ingest"]
}

# The load triggers' push requests: lake object finalized, landing object archived (retract)
# (run.routes.invoke).
resource "google_cloud_run_v2_service_iam_member" "load_invoker" {
  name     = google_cloudfunctions2_function.load.service_config[0].service
  location = var.region
  role     = "roles/run.invoker"
  member   = local.function_members["load"]
}

# The transform push subscription's requests (run.routes.invoke).
resource "google_cloud_run_v2_service_iam_member" "transform_invoker" {
  name     = google_cloudfunctions2_function.transform.service_config[0].service
  location = var.region
  role     = "roles/run.invoker"
  member   = local.function_members["transform"]
}

# Cloud Scheduler calls the sweep with an OIDC token of the sweep identity (run.routes.invoke).
resource "google_cloud_run_v2_service_iam_member" "sweep_invoker" {
  name     = google_cloudfunctions2_function.sweep.service_config[0].service
  location = var.region
  role     = "roles/run.invoker"
  member   = local.function_members["sweep"]
}

# --- Cloud Run job -------------------------------------------------------------------------

# Transform starts one execution of the dbt job per batch WITH container overrides (args carry
# the batch's --vars, env its id): jobs.run needs run.jobs.run on the job and, because overrides
# are set, run.jobs.runWithOverrides. Least privilege among the predefined roles, granted on this
# job only: roles/run.jobsExecutorWithOverrides = run.jobs.run + run.jobs.runWithOverrides +
# run.executions.cancel. roles/run.invoker lacks runWithOverrides; roles/run.developer would add
# updating and deleting the job, its executions and every other Cloud Run permission.
# No iam.serviceAccounts.actAs on the dbt account is needed: actAs is checked when a service
# account is attached to the job (create/update, the deployer), and overrides cannot change it.
# The function does not wait for the execution (run_job's operation is not polled), so it needs
# no run.operations.get / run.executions.get: the job records its own outcome in transform_runs.
resource "google_cloud_run_v2_job_iam_member" "transform_runs_dbt" {
  name     = google_cloud_run_v2_job.dbt.name
  location = var.region
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = local.function_members["transform"]
}

# Transform starts a dbt build only when no execution of the job is running (run.executions.list):
# two builds of the same models at once see each other half-done. Otherwise it answers 500 and
# Pub/Sub redelivers the message later.
resource "google_cloud_run_v2_job_iam_member" "transform_watches_dbt" {
  name     = google_cloud_run_v2_job.dbt.name
  location = var.region
  role     = "roles/run.viewer"
  member   = local.function_members["transform"]
}

# --- Function builds -------------------------------------------------------------------------

# Cloud Build writes the build's logs (logging.logEntries.create).
resource "google_project_iam_member" "functions_build" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = local.build_member
}

# Cloud Functions stages each bundle in its own gcf-v2-sources-* bucket before the build reads it
# (storage.objects.get); the condition limits the read to those buckets.
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

# The build pushes each function's image (artifactregistry.repositories.uploadArtifacts,
# downloadArtifacts for cached layers).
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
