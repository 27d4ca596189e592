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
  raw_rows_retention_days = 30 # quarantine/ and rejected/ reports keep raw rows
}

alerts = {
  email = "data-oncall@example.com" # empty: no notification channel
}

sweep = {
  schedule = "0 3 * * *" # daily, like the original batch pipeline
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
