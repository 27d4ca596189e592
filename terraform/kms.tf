# Customer-managed encryption keys (var.cmek). Off by default: Google-managed keys. When on, the
# buckets (default_kms_key_name), the BigQuery datasets (default key for every table made at
# runtime) and the tables Terraform creates, the Pub/Sub topics and the Artifact Registry repository
# are encrypted with Cloud KMS keys, either named in var.cmek or created here:
#   - a key in var.region for the buckets, topics and registry (they must be in the key's location);
#   - a key in the BigQuery location for the datasets ("EU" -> KMS "europe", "US" -> "us").
# Each Google service encrypts as its own service agent, so each agent gets
# roles/cloudkms.cryptoKeyEncrypterDecrypter (cloudkms.cryptoKeyVersions.useToEncrypt,
# .useToDecrypt) on the key its resources use, before the resources are created.

# What var.cmek turns on (variables only: tests/test_terraform.py evaluates these with Terraform).
locals {
  cmek_enabled = var.cmek.create_key || var.cmek.kms_key_name != null

  # BigQuery locations name multi-regions differently from Cloud KMS.
  bigquery_kms_location = lookup({ EU = "europe", US = "us" }, upper(var.bigquery.location), lower(var.bigquery.location))
  separate_bigquery_key = local.bigquery_kms_location != var.region

  # Keys named in var.cmek ("" when none; every use is behind local.cmek_enabled).
  cmek_given_key          = var.cmek.kms_key_name != null ? var.cmek.kms_key_name : ""
  cmek_given_bigquery_key = var.cmek.bigquery_kms_key_name != null ? var.cmek.bigquery_kms_key_name : local.cmek_given_key
}

locals {
  # The keys in use: created here, or named in var.cmek.
  kms_key = var.cmek.create_key ? one(google_kms_crypto_key.data[*].id) : local.cmek_given_key
  kms_key_bigquery = (var.cmek.create_key
    ? (local.separate_bigquery_key ? one(google_kms_crypto_key.bigquery[*].id) : one(google_kms_crypto_key.data[*].id))
  : local.cmek_given_bigquery_key)

  bigquery_agent         = local.cmek_enabled ? "serviceAccount:${one(data.google_bigquery_default_service_account.bq[*].email)}" : ""
  artifactregistry_agent = local.cmek_enabled ? "serviceAccount:${one(google_project_service_identity.artifactregistry[*].email)}" : ""
}

resource "google_kms_key_ring" "data" {
  count = var.cmek.create_key ? 1 : 0

  name     = "${local.prefix}-keys"
  location = var.region

  depends_on = [google_project_service.required]
}

resource "google_kms_crypto_key" "data" {
  count = var.cmek.create_key ? 1 : 0

  name            = "${local.prefix}-data"
  key_ring        = google_kms_key_ring.data[0].id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days: a new primary version; older versions still decrypt
  labels          = local.labels

  # Destroying a key makes everything encrypted with it unreadable for good. To tear down, remove
  # it from the state first (terraform state rm) and schedule its versions' destruction by hand.
  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_key_ring" "bigquery" {
  count = var.cmek.create_key && local.separate_bigquery_key ? 1 : 0

  name     = "${local.prefix}-keys-bq"
  location = local.bigquery_kms_location

  depends_on = [google_project_service.required]
}

resource "google_kms_crypto_key" "bigquery" {
  count = var.cmek.create_key && local.separate_bigquery_key ? 1 : 0

  name            = "${local.prefix}-data-bq"
  key_ring        = google_kms_key_ring.bigquery[0].id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days: a new primary version; older versions still decrypt
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

# BigQuery's encryption service account (bq-NUMBER@bigquery-encryption.iam.gserviceaccount.com).
data "google_bigquery_default_service_account" "bq" {
  count = local.cmek_enabled ? 1 : 0

  project = var.project_id

  depends_on = [google_project_service.required]
}

# The Artifact Registry service agent exists only once the API has been used: create it so the key
# grant below can name it.
resource "google_project_service_identity" "artifactregistry" {
  count    = local.cmek_enabled ? 1 : 0
  provider = google-beta

  project = var.project_id
  service = "artifactregistry.googleapis.com"

  depends_on = [google_project_service.required]
}

# Cloud Storage encrypts and decrypts the buckets' objects with their default key
# (cloudkms.cryptoKeyVersions.useToEncrypt, .useToDecrypt).
resource "google_kms_crypto_key_iam_member" "gcs_agent" {
  count = local.cmek_enabled ? 1 : 0

  crypto_key_id = local.kms_key
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.gcs_agent
}

# Pub/Sub encrypts and decrypts the topics' messages (cloudkms.cryptoKeyVersions.useToEncrypt,
# .useToDecrypt).
resource "google_kms_crypto_key_iam_member" "pubsub_agent" {
  count = local.cmek_enabled ? 1 : 0

  crypto_key_id = local.kms_key
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_agent
}

# Artifact Registry encrypts and decrypts the repository's images
# (cloudkms.cryptoKeyVersions.useToEncrypt, .useToDecrypt).
resource "google_kms_crypto_key_iam_member" "artifactregistry_agent" {
  count = local.cmek_enabled ? 1 : 0

  crypto_key_id = local.kms_key
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.artifactregistry_agent
}

# BigQuery encrypts and decrypts every table of the datasets, including the ones the load function
# and dbt create at runtime (cloudkms.cryptoKeyVersions.useToEncrypt, .useToDecrypt).
resource "google_kms_crypto_key_iam_member" "bigquery_agent" {
  count = local.cmek_enabled ? 1 : 0

  crypto_key_id = local.kms_key_bigquery
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.bigquery_agent
}
