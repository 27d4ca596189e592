# Nothing is lost when an event is: a Cloud Scheduler job calls the sweep function on a schedule
# (default daily, like the original batch pipeline). The sweep compares the landing bucket with the
# manifests, the lake with the load ledger and complete batches with transform runs, and re-drives
# whatever is missing or stuck past a grace period, idempotently (the same keys as the events):
# it rewrites a missed landing or lake object onto itself (a new generation, same bytes and
# metadata), so the platform's own finalize event delivers it again, and publishes a message for a
# batch never transformed or stuck. It calls no other function.
#
# Mistakes undone: deleting a workbook from the landing bucket retracts its rows. The landing
# bucket is versioned, so a deletion by a person does not emit object.v1.deleted (that event only
# comes when a noncurrent version is purged, e.g. by the noncurrent-version lifecycle rule, or on
# buckets without versioning): it emits object.v1.archived, as does an overwrite by a newer
# generation. The load function gets the archived events and retracts a source only when no live
# generation of it exists (an overwrite is superseded by the newer generation's finalize instead).

locals {
  landing_removed_event = "google.cloud.storage.object.v1.archived"

  # The same settings as the other functions, how long the sweep leaves things to their events, and
  # how long a dbt job execution may run (task timeout x attempts) before its run counts as stuck.
  sweep_env = merge(local.function_env, {
    RETAIL_PIPELINE_SWEEP_GRACE_SECONDS = tostring(var.sweep.grace_seconds)
    RETAIL_PIPELINE_RUN_TIMEOUT_SECONDS = tostring(var.dbt_job.timeout_seconds * (1 + var.dbt_job.max_retries))
  })
}

resource "google_cloudfunctions2_function" "sweep" {
  name        = local.function_names.sweep
  location    = var.region
  description = "Scheduled: find landing objects, lake objects and batches the events missed or left stuck, and re-drive them."
  labels      = local.labels

  build_config {
    runtime           = local.function_build.runtime
    entry_point       = "sweep"
    service_account   = local.function_build.service_account
    docker_repository = local.function_build.docker_repository

    source {
      storage_source {
        bucket = google_storage_bucket.function_sources.name
        object = google_storage_bucket_object.function_bundle["sweep"].name
      }
    }
  }

  # HTTP-triggered (no event_trigger): Cloud Scheduler calls its URL with an OIDC token of the
  # sweep identity. Internal ingress admits Cloud Scheduler requests from this project.
  service_config {
    available_memory                 = var.functions.sweep.memory
    available_cpu                    = var.functions.sweep.cpu
    timeout_seconds                  = var.functions.sweep.timeout_seconds
    max_instance_count               = var.functions.sweep.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["sweep"].email
    environment_variables            = local.sweep_env
  }

  depends_on = [
    time_sleep.agents_ready,
    google_storage_bucket_iam_member.sweep_rewrites_landing,
    google_storage_bucket_iam_member.sweep_rewrites_lake,
    google_bigquery_dataset_iam_member.sweep_reads_raw,
    google_bigquery_dataset_iam_member.sweep_reads_pipeline,
    google_project_iam_member.bigquery_job_user,
    google_pubsub_topic_iam_member.sweep_publishes,
    google_bigquery_table.batches,
    google_bigquery_table.load_ledger,
    google_bigquery_table.transform_runs,
    google_bigquery_table.retractions,
    google_project_iam_member.functions_build,
    google_artifact_registry_repository_iam_member.functions_build_writer,
    google_storage_bucket_iam_member.functions_build_reads_sources,
    google_project_iam_member.functions_build_reads_staged_sources,
  ]
}

resource "google_cloud_scheduler_job" "sweep" {
  name        = local.function_names.sweep
  region      = var.region
  description = "Calls the sweep function: re-drive whatever the events missed."
  schedule    = var.sweep.schedule
  time_zone   = var.sweep.time_zone

  # How long Cloud Scheduler waits for the function's answer.
  attempt_deadline = "${var.functions.sweep.timeout_seconds}s"

  # A failed sweep is retried a few times; the next scheduled one catches up in any case.
  retry_config {
    retry_count          = 2
    min_backoff_duration = "300s"
    max_backoff_duration = "1800s"
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.sweep.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.function["sweep"].email
      audience              = google_cloudfunctions2_function.sweep.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.required,
    google_cloud_run_v2_service_iam_member.sweep_invoker,
  ]
}

# Landing object deleted by a person (archived, see above) -> the load function retracts it.
resource "google_eventarc_trigger" "landing_removed" {
  name            = "${local.prefix}-landing-removed"
  location        = var.region
  service_account = google_service_account.function["load"].email
  labels          = local.labels

  matching_criteria {
    attribute = "type"
    value     = local.landing_removed_event
  }

  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.landing.name
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.load.service_config[0].service
      region  = var.region
    }
  }

  depends_on = [
    time_sleep.agents_ready,
    google_cloud_run_v2_service_iam_member.load_invoker,
    google_storage_bucket_iam_member.load_reads_landing,
  ]
}
