# Buckets: landing (workbooks dropped by people), lake (partitioned Parquet + manifests written by
# ingest), function sources (the packaged function bundles). All private: uniform bucket-level
# access, public access prevention enforced, no ACLs.

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
  versioning {
    enabled = true
  }

  # Landing objects are inputs: once ingested, the lake holds the data.
  lifecycle_rule {
    condition {
      age = var.buckets.landing_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # Error reports of rejected files (written by ingest under rejected/) expire sooner.
  lifecycle_rule {
    condition {
      age            = var.buckets.rejected_retention_days
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

  depends_on = [google_project_service.required]
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

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.buckets.noncurrent_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.required]
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

  depends_on = [google_project_service.required]
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
