{#- Incremental by invoice month. With a batch's months in var('partitions') the run rewrites
    only that slice (plus months left stale by a superseded generation, see macros/fact_slice.sql):
    BigQuery insert_overwrite of the months' day partitions; DuckDB delete + insert of the same
    slice in one transaction. Without var('partitions') (a manual build) the table is rebuilt
    whole, as --full-refresh does. -#}
{%- set incremental = (batch_months() | length) > 0 -%}
{{
  config(
    materialized=('incremental' if incremental else 'table'),
    incremental_strategy=('insert_overwrite' if target.type == 'bigquery' else 'fact_slice'),
    partitions=(batch_partition_days() if target.type == 'bigquery' and incremental else none),
    partition_by=({'field': 'invoice_date', 'data_type': 'date', 'granularity': 'day'}
                  if target.type == 'bigquery' else none),
    cluster_by=(['customer_id'] if target.type == 'bigquery' else none),
    on_schema_change='append_new_columns',
    pre_hook="{{ fact_delete_slice() }}",
  )
}}
-- depends_on: {{ source('raw', 'batches') }}

with lines as (

    select * from {{ ref('stg_sales_lines') }}
    {% if is_incremental() -%}
    where {{ months_predicate('invoice_date', fact_slice_months()) }}
    {%- endif %}

),

-- identical lines loaded from two sources appear once: keep the newest source's copy
distinct_lines as (

    select
        *,
        row_number() over (
            partition by line_id
            order by source_generation desc, source_uri, source_row
        ) as copy_number
    from lines

),

final as (

    select
        ---------- ids
        line_id,
        invoice_no,
        stock_code,
        customer_id,

        ---------- text
        description,
        country,
        line_type,

        ---------- numerics
        quantity,
        unit_price,
        amount,

        ---------- timestamps
        invoice_datetime,
        invoice_date,
        invoice_month,

        ---------- lineage
        batch_id,
        source_uri,
        source_generation,
        source_sheet,
        source_row,

        ---------- which run wrote the row (makes incremental rewrites visible)
        {{ "'" ~ invocation_id ~ "'" }} as dbt_invocation_id,
        {{ batch_id_literal() }} as transform_batch_id

    from distinct_lines
    where copy_number = 1

)

select * from final
