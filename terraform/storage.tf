# Buckets: landing (workbooks dropped by people), lake (partitioned Parquet + manifests written by
# ingest), function sources (the packaged function bundles), reports (the monthly Excel reports the
# dbt job writes for people). All private: uniform bucket-level
# access, public access prevention enforced, no ACLs. With var.cmek set, each has a default
# Cloud KMS key (kms.tf); otherwise Google-managed keys.

resource "google_storage_bucket" "landing" {
  #checkov:skip=CKV_GCP_62:Access is audited by Data Access audit logs for Cloud Storage (google_project_iam_audit_config.storage in iam.tf) instead of usage-log buckets.
  name                        = local.bucket_names.landing
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels

  # A re-uploaded workbook is a new generation; the old one stays for noncurrent_retention_days.
  # Deleting a workbook archives it (the google.cloud.storage.object.v1.archived event retracts its
  # rows, sweep.tf) and it can be restored from its noncurrent version within that time.
  versioning {
    enabled = true
  }

  # No rule deletes live workbooks: `reprocess` re-reads them, and a lifecycle deletion would be
  # indistinguishable from a person deleting the file (it would retract the source's rows).

  # Error reports of rejected files (written by ingest under rejected/) quote raw source rows:
  # they have a retention of their own.
  lifecycle_rule {
    condition {
      age            = var.buckets.raw_rows_retention_days
      matches_prefix = ["rejected/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.buckets.noncurrent_retention_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = local.cmek_enabled ? [local.kms_key] : []

    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.cmek_enabled ? strcontains(local.kms_key, "/locations/${var.region}/") : true
      error_message = "cmek.kms_key_name must be a key in var.region: buckets need a key in their own location."
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.gcs_agent]
}

resource "google_storage_bucket" "lake" {
  #checkov:skip=CKV_GCP_62:Access is audited by Data Access audit logs for Cloud Storage (google_project_iam_audit_config.storage in iam.tf) instead of usage-log buckets.
  name                        = local.bucket_names.lake
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels

  # The lake is the replayable record of every batch: keep overwritten objects for a while.
  versioning {
    enabled = true
  }

  # Quarantine Parquet keeps the raw text of rows that could not be typed: a retention of its own.
  lifecycle_rule {
    condition {
      age            = var.buckets.raw_rows_retention_days
      matches_prefix = ["quarantine/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.buckets.noncurrent_retention_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = local.cmek_enabled ? [local.kms_key] : []

    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.cmek_enabled ? strcontains(local.kms_key, "/locations/${var.region}/") : true
      error_message = "cmek.kms_key_name must be a key in var.region: buckets need a key in their own location."
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.gcs_agent]
}

resource "google_storage_bucket" "function_sources" {
  #checkov:skip=CKV_GCP_62:Build inputs only; access is audited by Data Access audit logs for Cloud Storage (google_project_iam_audit_config.storage in iam.tf).
  name                        = local.bucket_names.function_sources
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  versioning {
    enabled = true
  }

  # Bundles are named by content hash; a deployed function keeps its own built copy.
  lifecycle_rule {
    condition {
      age = 180
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.buckets.noncurrent_retention_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = local.cmek_enabled ? [local.kms_key] : []

    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.cmek_enabled ? strcontains(local.kms_key, "/locations/${var.region}/") : true
      error_message = "cmek.kms_key_name must be a key in var.region: buckets need a key in their own location."
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.gcs_agent]
}

# The monthly Excel reports: reports/online-retail-YYYY-MM.xlsx, written by the dbt job after each
# successful build (the month it touched). A bucket of their own, apart from the data: readers of the
# reports get access here (roles/storage.objectViewer) without any on the lake, and the report never
# lands in a bucket whose finalize events drive the pipeline.
resource "google_storage_bucket" "reports" {
  #checkov:skip=CKV_GCP_62:Access is audited by Data Access audit logs for Cloud Storage (google_project_iam_audit_config.storage in iam.tf) instead of usage-log buckets.
  name                        = local.bucket_names.reports
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels

  # A later build of the same month rewrites its report; the version before stays for a while.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.buckets.noncurrent_retention_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = local.cmek_enabled ? [local.kms_key] : []

    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.cmek_enabled ? strcontains(local.kms_key, "/locations/${var.region}/") : true
      error_message = "cmek.kms_key_name must be a key in var.region: buckets need a key in their own location."
    }
  }

  depends_on = [google_project_service.required, google_kms_crypto_key_iam_member.gcs_agent]
}

# One zip per function: main.py, requirements.txt and a copy of the shared package
# (scripts/package_functions.py). The object name carries the content hash, so a changed bundle
# redeploys its function and an unchanged one does not.
resource "google_storage_bucket_object" "function_bundle" {
  for_each = local.function_names

  bucket       = google_storage_bucket.function_sources.name
  name         = "functions/${each.key}-${filemd5("${path.module}/${var.function_bundle_dir}/${each.key}.zip")}.zip"
  source       = "${path.module}/${var.function_bundle_dir}/${each.key}.zip"
  content_type = "application/zip"
}
