# The three Cloud Functions (2nd gen). Each runs as its own service account, accepts only internal
# traffic (Eventarc and Pub/Sub push are internal), and builds from a bundle that contains the
# shared package. Retry on purpose: a transient error raises and the event is redelivered; a
# permanent one (bad input) is recorded and the function returns normally (no retry storm).

locals {
  function_build = {
    runtime           = "python311"
    service_account   = google_service_account.functions_build.id
    docker_repository = google_artifact_registry_repository.images.id
  }
}

resource "google_cloudfunctions2_function" "ingest" {
  name        = local.function_names.ingest
  location    = var.region
  description = "Landing object finalized: read, validate and clean the workbook into partitioned Parquet in the lake."
  labels      = local.labels

  build_config {
    runtime           = local.function_build.runtime
    entry_point       = "ingest"
    service_account   = local.function_build.service_account
    docker_repository = local.function_build.docker_repository

    source {
      storage_source {
        bucket = google_storage_bucket.function_sources.name
        object = google_storage_bucket_object.function_bundle["ingest"].name
      }
    }
  }

  service_config {
    available_memory                 = var.functions.ingest.memory
    available_cpu                    = var.functions.ingest.cpu
    timeout_seconds                  = var.functions.ingest.timeout_seconds
    max_instance_count               = var.functions.ingest.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["ingest"].email
    environment_variables            = local.function_env
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.function["ingest"].email

    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.landing.name
    }
  }

  depends_on = [
    time_sleep.agents_ready,
    google_storage_bucket_iam_member.ingest_reads_landing,
    google_storage_bucket_iam_member.ingest_writes_rejected_reports,
    google_storage_bucket_iam_member.ingest_writes_lake,
    google_project_iam_member.functions_build,
    google_artifact_registry_repository_iam_member.functions_build_writer,
    google_storage_bucket_iam_member.functions_build_reads_sources,
    google_project_iam_member.functions_build_reads_staged_sources,
  ]
}

resource "google_cloudfunctions2_function" "load" {
  name        = local.function_names.load
  location    = var.region
  description = "Lake object finalized: load it into the BigQuery raw tables with exactly-once effect, publish \"partition loaded\"."
  labels      = local.labels

  build_config {
    runtime           = local.function_build.runtime
    entry_point       = "load"
    service_account   = local.function_build.service_account
    docker_repository = local.function_build.docker_repository

    source {
      storage_source {
        bucket = google_storage_bucket.function_sources.name
        object = google_storage_bucket_object.function_bundle["load"].name
      }
    }
  }

  service_config {
    available_memory                 = var.functions.load.memory
    available_cpu                    = var.functions.load.cpu
    timeout_seconds                  = var.functions.load.timeout_seconds
    max_instance_count               = var.functions.load.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["load"].email
    environment_variables            = local.function_env
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.function["load"].email

    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.lake.name
    }
  }

  depends_on = [
    time_sleep.agents_ready,
    google_storage_bucket_iam_member.load_reads_lake,
    google_bigquery_dataset_iam_member.load_writes_raw,
    google_bigquery_dataset_iam_member.load_writes_pipeline,
    google_bigquery_table.sales_lines,
    google_bigquery_table.quarantine,
    google_bigquery_table.batches,
    google_bigquery_table.load_ledger,
    google_pubsub_topic_iam_member.load_publishes,
    google_project_iam_member.bigquery_job_user,
    google_project_iam_member.functions_build,
    google_artifact_registry_repository_iam_member.functions_build_writer,
    google_storage_bucket_iam_member.functions_build_reads_sources,
    google_project_iam_member.functions_build_reads_staged_sources,
  ]
}

# Triggered by the push subscription google_pubsub_subscription.transform (pubsub.tf), which
# carries its retry policy and dead-letter policy.
resource "google_cloudfunctions2_function" "transform" {
  name        = local.function_names.transform
  location    = var.region
  description = "\"Partition loaded\" message: when every partition of the batch is loaded, start one dbt job execution."
  labels      = local.labels

  build_config {
    runtime           = local.function_build.runtime
    entry_point       = "transform"
    service_account   = local.function_build.service_account
    docker_repository = local.function_build.docker_repository

    source {
      storage_source {
        bucket = google_storage_bucket.function_sources.name
        object = google_storage_bucket_object.function_bundle["transform"].name
      }
    }
  }

  service_config {
    available_memory                 = var.functions.transform.memory
    available_cpu                    = var.functions.transform.cpu
    timeout_seconds                  = var.functions.transform.timeout_seconds
    max_instance_count               = var.functions.transform.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["transform"].email
    environment_variables            = local.function_env
  }

  depends_on = [
    time_sleep.agents_ready,
    google_storage_bucket_iam_member.transform_writes_claims,
    google_bigquery_dataset_iam_member.transform_reads_raw,
    google_bigquery_dataset_iam_member.transform_writes_pipeline,
    google_bigquery_table.batches,
    google_bigquery_table.load_ledger,
    google_bigquery_table.transform_runs,
    google_cloud_run_v2_job_iam_member.transform_runs_dbt,
    google_project_iam_member.bigquery_job_user,
    google_project_iam_member.functions_build,
    google_artifact_registry_repository_iam_member.functions_build_writer,
    google_storage_bucket_iam_member.functions_build_reads_sources,
    google_project_iam_member.functions_build_reads_staged_sources,
  ]
}
