# APIs the deployment uses. They stay enabled on destroy (other workloads may use them).

locals {
  required_apis = toset(concat([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ], local.cmek_enabled ? ["cloudkms.googleapis.com"] : []))
}

resource "google_project_service" "required" {
  for_each = local.required_apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Service agents: creating the identity makes sure each exists before IAM bindings name it (Pub/Sub)
# and before the first Eventarc trigger is created (a known first-deploy failure otherwise).
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.required]
}

resource "google_project_service_identity" "eventarc" {
  provider = google-beta

  project = var.project_id
  service = "eventarc.googleapis.com"

  depends_on = [google_project_service.required]
}

# The Cloud Storage service agent publishes the object events that Eventarc delivers.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.required]
}

# First apply on a fresh project: enabling an API returns before its service agents exist and
# before grants to them have propagated, and Eventarc then refuses to create a storage trigger
# ("Permission denied while using the Eventarc Service Agent ... it may take a few minutes",
# or the Cloud Storage agent lacking pubsub.publisher): the google provider's documented
# first-apply failure (hashicorp/terraform-provider-google#14584, #25294). Every function and
# Eventarc trigger depends on this wait. It runs once, on create; later applies do not wait.
resource "time_sleep" "agents_ready" {
  create_duration = var.first_apply_wait

  depends_on = [
    google_project_service.required,
    google_project_service_identity.eventarc,
    google_project_service_identity.pubsub,
    google_project_iam_member.gcs_agent_publishes_events,
    google_project_iam_member.eventarc_agent,
    google_project_iam_member.event_receiver,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}
