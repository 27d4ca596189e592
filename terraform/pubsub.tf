# "Partition loaded" messages: the load function publishes one per lake object it applied; a push
# subscription delivers them to the transform function (fan-in: one dbt run per complete batch).
#
# Why a subscription of our own and not the function's Eventarc Pub/Sub trigger: Eventarc creates
# and owns its subscription, so Terraform could set neither a dead-letter topic nor message
# retention on it. Here the retry policy, the dead-letter policy and retained acked messages (for
# `gcloud pubsub subscriptions seek`, the replay runbook) are all explicit.

resource "google_pubsub_topic" "partition_loaded" {
  name   = var.topic_name
  labels = local.labels

  # CMEK when var.cmek is set (kms.tf); null keeps Google-managed keys.
  kms_key_name = local.cmek_enabled ? local.kms_key : null

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.pubsub_agent]
}

resource "google_pubsub_topic" "partition_loaded_dead_letter" {
  name   = "${var.topic_name}-dead-letter"
  labels = local.labels

  # CMEK when var.cmek is set (kms.tf); null keeps Google-managed keys.
  kms_key_name = local.cmek_enabled ? local.kms_key : null

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.pubsub_agent]
}

resource "google_pubsub_subscription" "transform" {
  name   = "${var.topic_name}-transform"
  topic  = google_pubsub_topic.partition_loaded.id
  labels = local.labels

  # Pub/Sub waits this long for the function's answer (its timeout is at most 540 s).
  ack_deadline_seconds = 600

  # Keep acknowledged messages so the subscription can be seeked back to a time (replay).
  retain_acked_messages      = true
  message_retention_duration = var.pubsub.message_retention_duration

  retry_policy {
    minimum_backoff = var.pubsub.minimum_backoff
    maximum_backoff = var.pubsub.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.partition_loaded_dead_letter.id
    max_delivery_attempts = var.pubsub.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expires
  }

  # The path carries the topic: functions-framework then puts it in the CloudEvent's source.
  push_config {
    push_endpoint = "${google_cloudfunctions2_function.transform.service_config[0].uri}/projects/${var.project_id}/topics/${google_pubsub_topic.partition_loaded.name}"

    oidc_token {
      service_account_email = google_service_account.function["transform"].email
      audience              = google_cloudfunctions2_function.transform.service_config[0].uri
    }
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.transform_invoker,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}

# Messages that exhausted their delivery attempts wait here for a person (7 days).
resource "google_pubsub_subscription" "dead_letter" {
  name   = "${var.topic_name}-dead-letter"
  topic  = google_pubsub_topic.partition_loaded_dead_letter.id
  labels = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}
