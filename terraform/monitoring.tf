# Failures are seen, not only logged: three alert policies, sent to an email notification channel
# when var.alerts.email is set (none otherwise: the policies still open incidents in Cloud
# Monitoring).
#
# 1. a dbt run failed: a log-based metric counts the dbt job's failure lines. The job logs one JSON
#    line per run on stdout (Cloud Logging parses it into jsonPayload); a failed run's line carries
#      "stage": "transform", "status": "failed"   (and "severity": "ERROR", "batch_id": ...)
#    and the filter below matches exactly those two fields on the dbt job's logs;
# 2. the dead-letter subscription holds messages (transform gave up on a batch);
# 3. a function answers more than alerts.function_error_ratio of its requests with an error.
#    Cloud Functions (2nd gen) run as Cloud Run services, so their requests are counted by
#    run.googleapis.com/request_count; an execution that raised (the retry path) answers 5xx.
#    (cloudfunctions.googleapis.com/function/execution_count with status != "ok" is the 1st gen
#    metric.)

locals {
  notification_channels = google_monitoring_notification_channel.email[*].id
}

# Variables only: tests/test_terraform.py evaluates it with Terraform.
locals {
  dbt_failed_run_filter = join(" AND ", [
    "resource.type=\"cloud_run_job\"",
    "resource.labels.job_name=\"${local.dbt_job_name}\"",
    "jsonPayload.stage=\"transform\"",
    "jsonPayload.status=\"failed\"",
  ])
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alerts.email == "" ? 0 : 1

  display_name = "Retail pipeline alerts (${var.alerts.email})"
  description  = "Where the retail pipeline's alert policies send their notifications."
  type         = "email"
  user_labels  = local.labels

  labels = {
    email_address = var.alerts.email
  }

  depends_on = [google_project_service.required]
}

resource "google_logging_metric" "dbt_failed_runs" {
  name        = "${local.prefix}-dbt-failed-runs"
  description = "Failed dbt runs of the ${local.dbt_job_name} Cloud Run job (one per failure line the job logs)."
  filter      = local.dbt_failed_run_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Retail pipeline: failed dbt runs"
  }

  depends_on = [google_project_service.required]
}

resource "google_monitoring_alert_policy" "dbt_failed" {
  display_name          = "Retail pipeline: a dbt run failed"
  combiner              = "OR"
  enabled               = true
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "failed dbt runs > 0"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.dbt_failed_runs.name}\" AND resource.type=\"cloud_run_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A dbt build of the retail pipeline failed (a test failed or dbt could not run); the batch is
      `transform_failed` and its marts are not updated. Read the job's log line (jsonPayload.batch_id,
      errors), fix the data or the model, then re-run the batch: `retail-pipeline replay BATCH_ID
      --messages-only --claim-key fix-1` (docs/deploy.md, "Use it").
    EOT
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "Retail pipeline: dead-lettered messages"
  combiner              = "OR"
  enabled               = true
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "dead-letter backlog > 0"

    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      "Partition loaded" messages exhausted their delivery attempts to the transform function and
      wait in the dead-letter subscription (kept 7 days). Look at them (`gcloud pubsub subscriptions
      pull ${google_pubsub_subscription.dead_letter.name} --limit=10`), fix the cause (transform's
      logs), then replay the batch (`retail-pipeline replay BATCH_ID --messages-only`) and
      acknowledge the dead letters.
    EOT
  }
}

resource "google_monitoring_alert_policy" "function_errors" {
  display_name          = "Retail pipeline: function error rate"
  combiner              = "OR"
  enabled               = true
  severity              = "WARNING"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "share of non-2xx answers > ${var.alerts.function_error_ratio} (5 min)"

    condition_threshold {
      filter             = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=one_of(${join(", ", [for name in values(local.function_names) : "\"${name}\""])}) AND metric.labels.response_code_class!=\"2xx\""
      denominator_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=one_of(${join(", ", [for name in values(local.function_names) : "\"${name}\""])})"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alerts.function_error_ratio
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A retail pipeline function answers many requests with errors. Storage events are retried for
      24 hours and then dropped (the daily sweep re-drives them); read the function's logs
      (severity>=ERROR) for the cause. A bad input file is not an error (it is rejected and
      recorded); errors here are transient failures or bugs.
    EOT
  }
}
