# Example variables: copy to terraform/terraform.tfvars (or pass with -var-file) and edit.
# Cloud Build passes project_id and dbt_image itself (cloudbuild.yaml).

project_id  = "my-retail-project"
region      = "europe-west1"
name_prefix = "retail"

# dbt image built from dbt/Dockerfile and pushed by Cloud Build.
dbt_image = "europe-west1-docker.pkg.dev/my-retail-project/retail-images/dbt:latest"

bigquery = {
  dataset_prefix = "retail"
  location       = "EU"
}

buckets = {
  landing_retention_days  = 90
  rejected_retention_days = 30
}

functions = {
  ingest = {
    memory        = "2Gi"
    max_instances = 5
  }
}

labels = {
  team = "data-engineering"
}

# Set to false and apply before `terraform destroy`.
deletion_protection = true
