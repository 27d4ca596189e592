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
    landing_retention_days    = optional(number, 90)
    rejected_retention_days   = optional(number, 30)
    noncurrent_retention_days = optional(number, 30)
  })
  description = <<-EOT
    Bucket names (globally unique; null picks PROJECT-PREFIX-<role>) and lifecycle settings:
    landing objects are deleted after landing_retention_days (the lake keeps the data), error
    reports under rejected/ after rejected_retention_days, noncurrent versions after
    noncurrent_retention_days.
  EOT
  default     = {}
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
  })
  description = "Memory, CPU, timeout and maximum instances of each Cloud Function (2nd gen). Event-driven functions time out after at most 540 s."
  default     = {}
}

variable "function_bundle_dir" {
  type        = string
  description = "Folder with ingest.zip, load.zip and transform.zip made by scripts/package_functions.py, relative to this module."
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
