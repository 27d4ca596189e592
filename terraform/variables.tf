# Every name the deployment uses comes from these variables (nothing is hard-coded per project).

variable "project_id" {
  type        = string
  description = "Google Cloud project id to deploy into."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project id."
  }
}

variable "region" {
  type        = string
  description = "Region of the buckets, functions, Eventarc triggers, Artifact Registry and the dbt job (e.g. europe-west1)."
  default     = "europe-west1"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (service accounts, functions, topics, job); lowercase letters, digits, dashes."
  default     = "retail"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "buckets" {
  type = object({
    landing                   = optional(string) # default: PROJECT-PREFIX-landing
    lake                      = optional(string) # default: PROJECT-PREFIX-lake
    function_sources          = optional(string) # default: PROJECT-PREFIX-function-sources
    reports                   = optional(string) # default: PROJECT-PREFIX-reports
    raw_rows_retention_days   = optional(number, 30)
    noncurrent_retention_days = optional(number, 30)
  })
  description = <<-EOT
    Bucket names (globally unique; null picks PROJECT-PREFIX-<role>) and lifecycle settings.
    The reports that keep raw source rows (quarantine/ Parquet in the lake, rejected/ error reports
    in landing) are deleted after raw_rows_retention_days; noncurrent versions of any object after
    noncurrent_retention_days. Landing workbooks are kept: they are what `reprocess` re-reads, and
    deleting one is how a source is retracted (so no lifecycle rule deletes them).
  EOT
  default     = {}

  validation {
    condition     = var.buckets.raw_rows_retention_days >= 1 && var.buckets.noncurrent_retention_days >= 1
    error_message = "buckets.raw_rows_retention_days and buckets.noncurrent_retention_days must be at least 1 day."
  }
}

variable "bigquery" {
  type = object({
    dataset_prefix = optional(string, "retail")
    location       = optional(string, "EU")
  })
  description = <<-EOT
    BigQuery datasets are DATASET_PREFIX_raw (raw tables), DATASET_PREFIX_pipeline (load ledger,
    transform claims) and DATASET_PREFIX_analytics (dbt models); the functions get
    RETAIL_PIPELINE_WAREHOUSE=bigquery://PROJECT/DATASET_PREFIX. location is a BigQuery location
    that contains var.region (EU for European regions, US for American ones, or the region itself).
  EOT
  default     = {}

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,30}$", var.bigquery.dataset_prefix))
    error_message = "bigquery.dataset_prefix must be lowercase letters, digits and underscores."
  }
}

variable "topic_name" {
  type        = string
  description = "Pub/Sub topic the load function publishes \"partition loaded\" messages to."
  default     = "partition-loaded"
}

variable "pubsub" {
  type = object({
    max_delivery_attempts      = optional(number, 10)
    minimum_backoff            = optional(string, "10s")
    maximum_backoff            = optional(string, "600s")
    message_retention_duration = optional(string, "604800s")
  })
  description = "Delivery of \"partition loaded\" messages to the transform function: retries with backoff, then the dead-letter topic; acked messages are kept for message_retention_duration so the subscription can be seeked back (replay)."
  default     = {}
}

variable "functions" {
  type = object({
    ingest = optional(object({
      memory          = optional(string, "2Gi")
      cpu             = optional(string, "1")
      timeout_seconds = optional(number, 540)
      max_instances   = optional(number, 5)
    }), {})
    load = optional(object({
      memory          = optional(string, "1Gi")
      cpu             = optional(string, "1")
      timeout_seconds = optional(number, 540)
      max_instances   = optional(number, 20)
    }), {})
    transform = optional(object({
      memory          = optional(string, "512Mi")
      cpu             = optional(string, "1")
      timeout_seconds = optional(number, 540)
      max_instances   = optional(number, 5)
    }), {})
    sweep = optional(object({
      memory          = optional(string, "1Gi")
      cpu             = optional(string, "1")
      timeout_seconds = optional(number, 1800)
      max_instances   = optional(number, 1)
    }), {})
  })
  description = "Memory, CPU, timeout and maximum instances of each Cloud Function (2nd gen). Event-driven functions time out after at most 540 s; the HTTP sweep function after at most 1800 s here (Cloud Scheduler waits at most 30 minutes for an answer)."
  default     = {}

  validation {
    condition     = var.functions.sweep.timeout_seconds <= 1800
    error_message = "functions.sweep.timeout_seconds must be at most 1800 (Cloud Scheduler's longest attempt deadline)."
  }
}

variable "function_bundle_dir" {
  type        = string
  description = "Folder with ingest.zip, load.zip, transform.zip and sweep.zip made by scripts/package_functions.py, relative to this module."
  default     = "../build/functions"
}

variable "dbt_image" {
  type        = string
  description = "Container image of the dbt Cloud Run job (built from dbt/Dockerfile), e.g. REGION-docker.pkg.dev/PROJECT/REPO/dbt:TAG."
}

variable "dbt_job" {
  type = object({
    memory          = optional(string, "2Gi")
    cpu             = optional(string, "1")
    timeout_seconds = optional(number, 1800)
    max_retries     = optional(number, 1)
  })
  description = "Resources, timeout and retries of one dbt job execution."
  default     = {}
}

variable "artifact_registry" {
  type = object({
    repository_id     = optional(string) # default: PREFIX-images
    keep_versions     = optional(number, 10)
    delete_after_days = optional(number, 30)
  })
  description = "Docker repository for the dbt image and the functions' build images; old untagged/extra versions are cleaned up (keep the newest keep_versions, delete others older than delete_after_days days)."
  default     = {}
}

variable "looker_studio_report_name" {
  type        = string
  description = "Name of the report the Looker Studio link creates."
  default     = "Online Retail sales"
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the BigQuery tables and the dbt job from deletion and keep non-empty buckets on destroy. Set to false (and apply) before terraform destroy."
  default     = true
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}
}

variable "storage_data_access_logs" {
  type        = bool
  description = "Turn on Data Access audit logs (reads and writes) for Cloud Storage in the project: how bucket access is audited here. Replaces any other audit config for storage.googleapis.com."
  default     = true
}

variable "first_apply_wait" {
  type        = string
  description = "How long the first apply waits after enabling the APIs and granting the service agents' roles before it creates the functions and Eventarc triggers (IAM propagation; a duration such as \"120s\"). Only the first apply waits."
  default     = "120s"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.first_apply_wait))
    error_message = "first_apply_wait must be a duration in seconds or minutes, e.g. \"120s\" or \"2m\"."
  }
}

variable "sweep" {
  type = object({
    schedule      = optional(string, "0 3 * * *")
    time_zone     = optional(string, "Etc/UTC")
    grace_seconds = optional(number, 900)
  })
  description = "When Cloud Scheduler calls the sweep function, which re-drives whatever the events missed (a landing object with no manifest, a lake object with no ledger row, a complete batch never transformed, a run that never finished): a cron schedule (default daily at 03:00), its time zone, and the grace period in seconds the sweep leaves to the events (default 900)."
  default     = {}
}

variable "alerts" {
  type = object({
    email                = optional(string, "")
    function_error_ratio = optional(number, 0.05)
  })
  description = <<-EOT
    Alerting. email: where alerts go (an email notification channel); empty creates no channel and
    the alert policies notify nobody (they still open incidents in Cloud Monitoring).
    function_error_ratio: share of a function's requests answered with an error (non-2xx) over 5
    minutes above which the function error alert fires.
  EOT
  default     = {}

  validation {
    condition     = var.alerts.function_error_ratio > 0 && var.alerts.function_error_ratio <= 1
    error_message = "alerts.function_error_ratio must be in (0, 1]."
  }
}

variable "cmek" {
  type = object({
    kms_key_name          = optional(string)
    bigquery_kms_key_name = optional(string)
    create_key            = optional(bool, false)
  })
  description = <<-EOT
    Customer-managed encryption keys (CMEK). Off by default (Google-managed keys). Either name
    existing Cloud KMS keys or let the module create them:
    - kms_key_name: projects/P/locations/REGION/keyRings/R/cryptoKeys/K, a key in var.region, for
      the buckets, the Pub/Sub topics and the Artifact Registry repository;
    - bigquery_kms_key_name: a key in the BigQuery location (location "EU" -> KMS location
      "europe", "US" -> "us"); defaults to kms_key_name, which only fits when bigquery.location is
      var.region itself;
    - create_key = true: a key ring PREFIX-keys with key PREFIX-data in var.region (and
      PREFIX-keys-bq / PREFIX-data-bq in the BigQuery location when that differs), rotated every
      90 days. Key rings cannot be deleted; the keys are protected from destroy.
    Set it at the first apply: turning it on later replaces the topics, the image repository and
    the Terraform-made tables (a key is fixed at their creation), and existing objects keep the
    key they were written with.
    The service agents of Cloud Storage, BigQuery, Pub/Sub and Artifact Registry get
    roles/cloudkms.cryptoKeyEncrypterDecrypter on the key(s).
  EOT
  default     = {}

  validation {
    condition     = !(var.cmek.create_key && (var.cmek.kms_key_name != null || var.cmek.bigquery_kms_key_name != null))
    error_message = "Set either cmek.create_key or cmek.kms_key_name / cmek.bigquery_kms_key_name, not both."
  }

  validation {
    condition     = var.cmek.bigquery_kms_key_name == null || var.cmek.kms_key_name != null
    error_message = "cmek.bigquery_kms_key_name needs cmek.kms_key_name too (the buckets, topics and registry use that one)."
  }
}

variable "write_reports" {
  type        = bool
  description = "After each successful dbt build the job writes the month's Excel report to gs://REPORTS_BUCKET/reports/online-retail-YYYY-MM.xlsx (the latest month the build touched). false: no report (the bucket and the job's grant stay)."
  default     = true
}

variable "max_data_age_hours" {
  type        = number
  description = "Freshness limit of the production dbt job: its data test assert_data_freshness fails when the newest ingested batch is older than this many hours. 0 turns the test off."
  default     = 0

  validation {
    condition     = var.max_data_age_hours >= 0
    error_message = "max_data_age_hours must be 0 (off) or a positive number of hours."
  }
}
