# Terraform and provider versions, and the remote state backend.
#
# The state lives in a GCS bucket that exists before the first apply (created once by hand, see
# docs/deploy.md). The backend is configured partially: pass the bucket at init time:
#   terraform init -backend-config="bucket=YOUR_STATE_BUCKET"

terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.10"
    }
    # time_sleep: the first-apply wait for service agents and IAM propagation (apis.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }

  backend "gcs" {
    prefix = "retail-pipeline"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

# google-beta only for google_project_service_identity (makes sure the Pub/Sub service agent exists
# before IAM bindings name it).
provider "google-beta" {
  project = var.project_id
  region  = var.region
}
