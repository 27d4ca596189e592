# Artifact Registry (the dbt image and the functions' build images) and the dbt Cloud Run job.
# The transform function starts one execution per complete batch, passing the batch's invoice
# months in the execution overrides; the job runs `dbt build --target prod` (dbt/Dockerfile), then
# writes the month's Excel report to the reports bucket (storage.tf) when var.write_reports is on.

resource "google_artifact_registry_repository" "images" {
  repository_id = local.artifact_repository_id
  location      = var.region
  format        = "DOCKER"
  description   = "dbt job image and Cloud Functions build images of the retail pipeline."
  labels        = local.labels

  # CMEK when var.cmek is set (kms.tf); null keeps Google-managed keys. Fixed at creation.
  kms_key_name = local.cmek_enabled ? local.kms_key : null

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"

    most_recent_versions {
      keep_count = var.artifact_registry.keep_versions
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"

    condition {
      older_than = "${var.artifact_registry.delete_after_days * 86400}s"
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.artifactregistry_agent]
}

resource "google_cloud_run_v2_job" "dbt" {
  name                = local.dbt_job_name
  location            = var.region
  description         = "dbt build --target prod of the retail project: staging, fact, marts and their tests."
  labels              = local.labels
  deletion_protection = var.deletion_protection

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.dbt.email
      timeout         = "${var.dbt_job.timeout_seconds}s"
      max_retries     = var.dbt_job.max_retries

      containers {
        image = var.dbt_image

        resources {
          limits = {
            cpu    = var.dbt_job.cpu
            memory = var.dbt_job.memory
          }
        }

        # dbt's profile and sources (dbt_env), and the report step after a successful build (main.tf)
        dynamic "env" {
          for_each = merge(local.dbt_env, local.dbt_report_env)

          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [
    google_bigquery_dataset_iam_member.dbt_reads_raw,
    google_bigquery_dataset_iam_member.dbt_writes_pipeline,
    google_bigquery_dataset_iam_member.dbt_writes_analytics,
    google_storage_bucket_iam_member.dbt_writes_reports,
    google_project_iam_member.dbt_runs_jobs,
    google_bigquery_table.transform_runs,
  ]
}
