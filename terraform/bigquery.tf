# BigQuery: raw tables written by the load function, the pipeline's bookkeeping, dbt's models.
# Every table the functions and the dbt job use is created here, never at runtime (the functions
# hold no project-level bigquery.datasets.create or dataset-creating role; they only look tables up).
# The schemas are generated from the single schema definition in code
# (retail_pipeline/schema.py: `retail-pipeline schema bigquery-json --table T > terraform/schemas/T.json`);
# tests/test_terraform.py fails if a checked-in file differs from what the code generates.
# Access is granted per dataset (iam.tf); no dataset is public.

resource "google_bigquery_dataset" "raw" {
  dataset_id    = local.datasets.raw
  friendly_name = "Retail pipeline: raw"
  description   = "Typed invoice lines, quarantined rows and batch manifests, loaded from the lake by the load function."
  location      = var.bigquery.location
  labels        = local.labels

  delete_contents_on_destroy = !var.deletion_protection

  dynamic "default_encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.cmek_enabled ? strcontains(local.kms_key_bigquery, "/locations/${local.bigquery_kms_location}/") : true
      error_message = "The BigQuery key must be in the datasets' location (KMS location ${local.bigquery_kms_location}): set cmek.bigquery_kms_key_name."
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.bigquery_agent]
}

resource "google_bigquery_dataset" "pipeline" {
  dataset_id    = local.datasets.pipeline
  friendly_name = "Retail pipeline: bookkeeping"
  description   = "Load ledger (one row per lake object applied), transform runs (one dbt run per batch, with its outcome) and the load function's staging tables."
  location      = var.bigquery.location
  labels        = local.labels

  delete_contents_on_destroy = !var.deletion_protection

  dynamic "default_encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.cmek_enabled ? strcontains(local.kms_key_bigquery, "/locations/${local.bigquery_kms_location}/") : true
      error_message = "The BigQuery key must be in the datasets' location (KMS location ${local.bigquery_kms_location}): set cmek.bigquery_kms_key_name."
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.bigquery_agent]
}

resource "google_bigquery_dataset" "analytics" {
  dataset_id    = local.datasets.analytics
  friendly_name = "Retail pipeline: analytics"
  description   = "dbt models: staging views, the sales fact (partitioned by invoice day, clustered by customer) and the marts Looker Studio reads."
  location      = var.bigquery.location
  labels        = local.labels

  delete_contents_on_destroy = !var.deletion_protection

  dynamic "default_encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.cmek_enabled ? strcontains(local.kms_key_bigquery, "/locations/${local.bigquery_kms_location}/") : true
      error_message = "The BigQuery key must be in the datasets' location (KMS location ${local.bigquery_kms_location}): set cmek.bigquery_kms_key_name."
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.bigquery_agent]
}

resource "google_bigquery_table" "sales_lines" {
  dataset_id          = google_bigquery_dataset.raw.dataset_id
  table_id            = "sales_lines"
  description         = "Typed, distinct invoice lines of every ingested source. Partitioned by invoice_date (day), clustered by customer_id."
  schema              = file("${path.module}/schemas/sales_lines.json")
  deletion_protection = var.deletion_protection
  labels              = local.labels

  # Tables Terraform creates name the key themselves; tables made at runtime (staging tables, dbt's
  # models) get the dataset's default key.
  dynamic "encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = encryption_configuration.value
    }
  }

  time_partitioning {
    type  = "DAY"
    field = "invoice_date"
  }

  clustering = ["customer_id"]
}

resource "google_bigquery_table" "quarantine" {
  dataset_id          = google_bigquery_dataset.raw.dataset_id
  table_id            = "quarantine"
  description         = "Rows that could not be typed, with the reason, as read from the source."
  schema              = file("${path.module}/schemas/quarantine.json")
  deletion_protection = var.deletion_protection
  labels              = local.labels

  # Tables Terraform creates name the key themselves; tables made at runtime (staging tables, dbt's
  # models) get the dataset's default key.
  dynamic "encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = encryption_configuration.value
    }
  }

  clustering = ["batch_id"]
}

resource "google_bigquery_table" "batches" {
  dataset_id          = google_bigquery_dataset.raw.dataset_id
  table_id            = "batches"
  description         = "One row per ingested or rejected landing object: the batch manifest with its row counts."
  schema              = file("${path.module}/schemas/batches.json")
  deletion_protection = var.deletion_protection
  labels              = local.labels

  # Tables Terraform creates name the key themselves; tables made at runtime (staging tables, dbt's
  # models) get the dataset's default key.
  dynamic "encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "load_ledger" {
  dataset_id          = google_bigquery_dataset.pipeline.dataset_id
  table_id            = "load_ledger"
  description         = "One row per lake object applied to a raw table (exactly-once loading). Written by the load function."
  schema              = file("${path.module}/schemas/load_ledger.json")
  deletion_protection = var.deletion_protection
  labels              = local.labels

  # Tables Terraform creates name the key themselves; tables made at runtime (staging tables, dbt's
  # models) get the dataset's default key.
  dynamic "encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = encryption_configuration.value
    }
  }

  clustering = ["batch_id"]
}

resource "google_bigquery_table" "transform_runs" {
  dataset_id          = google_bigquery_dataset.pipeline.dataset_id
  table_id            = "transform_runs"
  description         = "One row per claimed dbt run of a batch: claimed by the transform function, outcome recorded by the dbt job."
  schema              = file("${path.module}/schemas/transform_runs.json")
  deletion_protection = var.deletion_protection
  labels              = local.labels

  # Tables Terraform creates name the key themselves; tables made at runtime (staging tables, dbt's
  # models) get the dataset's default key.
  dynamic "encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = encryption_configuration.value
    }
  }

  clustering = ["batch_id"]
}

resource "google_bigquery_table" "retractions" {
  dataset_id          = google_bigquery_dataset.pipeline.dataset_id
  table_id            = "retractions"
  description         = "Audit of retractions: one row per batch whose rows were removed from the raw tables (who, when, why, rows). Written by retract and the load function."
  schema              = file("${path.module}/schemas/retractions.json")
  deletion_protection = var.deletion_protection
  labels              = local.labels

  # Tables Terraform creates name the key themselves; tables made at runtime (staging tables, dbt's
  # models) get the dataset's default key.
  dynamic "encryption_configuration" {
    for_each = local.cmek_enabled ? [local.kms_key_bigquery] : []

    content {
      kms_key_name = encryption_configuration.value
    }
  }

  clustering = ["batch_id"]
}
