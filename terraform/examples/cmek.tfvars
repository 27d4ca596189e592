# Example: the same deployment with customer-managed encryption keys that the module creates
# (a key ring and key in the region, and one in the BigQuery location). To use keys you already
# have, set cmek.kms_key_name (and cmek.bigquery_kms_key_name) instead of create_key.
# tests/test_terraform.py scans the module with these values: checkov passes with no CMEK skip.

project_id = "my-retail-project"
region     = "europe-west1"
dbt_image  = "europe-west1-docker.pkg.dev/my-retail-project/retail-images/dbt:latest"

bigquery = {
  location = "EU"
}

cmek = {
  create_key = true
}
