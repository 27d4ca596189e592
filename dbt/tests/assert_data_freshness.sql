-- Freshness for production: fails when the newest ingested batch is older than
-- var('max_data_age_hours') hours. 0 (the default, locally) turns it off; the prod dbt job gets the
-- limit from RETAIL_PIPELINE_MAX_DATA_AGE_HOURS (terraform: var.max_data_age_hours, local.dbt_env).
{%- set limit_seconds = ((var('max_data_age_hours', 0) | float) * 3600) | int %}
{%- set cutoff = ("timestamp_sub(current_timestamp(), interval " ~ limit_seconds ~ " second)")
                 if target.type == 'bigquery' else ("now() - to_seconds(" ~ limit_seconds ~ ")") %}
select max(ingested_at) as newest_ingest
from {{ ref('stg_batches') }}
where state = 'ingested'
{%- if (var('max_data_age_hours', 0) | float) > 0 %}
having max(ingested_at) < {{ cutoff }}
{%- else %}
having 1 = 0
{%- endif %}
