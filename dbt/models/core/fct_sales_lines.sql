{#- Incremental by invoice month. A run rewrites only its slice: the months it claimed from the
    transform slice table (queued by the transform for its batches) plus months left stale by a
    superseded generation (see macros/fact_slice.sql and macros/transform_slice.sql): BigQuery
    insert_overwrite of the months' day partitions (one MERGE); DuckDB delete + insert of the months
    in one transaction. A run with nothing queued (a manual build) rewrites only stale months;
    --full-refresh rebuilds the table whole. -#}
{{
  config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'bigquery' else 'fact_slice'),
    partition_by=({'field': 'invoice_date', 'data_type': 'date', 'granularity': 'day'}
                  if target.type == 'bigquery' else none),
    cluster_by=(['customer_id'] if target.type == 'bigquery' else none),
    on_schema_change='append_new_columns',
    post_hook="{{ consume_transform_slice() }}",
  )
}}
-- depends_on: {{ source('raw', 'batches') }}

with lines as (

    select * from {{ ref('stg_sales_lines') }}
    {% if is_incremental() -%}
    where {{ months_predicate('invoice_date', fact_slice_months()) }}
    {%- endif %}

),

-- identical lines loaded from two sources appear once: keep the newest source's copy. Only a line_id
-- that occurs more than once needs ranking; every other line is kept as it is, without a sort
repeated_ids as (

    select line_id from lines group by line_id having count(*) > 1

),

distinct_lines as (

    select lines.*, 1 as copy_number
    from lines
    left join repeated_ids on repeated_ids.line_id = lines.line_id
    where repeated_ids.line_id is null

    union all

    select * from (
        select
            lines.*,
            row_number() over (
                partition by lines.line_id
                order by lines.source_generation desc, lines.source_uri, lines.source_row
            ) as copy_number
        from lines
        inner join repeated_ids on repeated_ids.line_id = lines.line_id
    ) as ranked
    where copy_number = 1

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
        {{ transform_batch_id('invoice_month') }} as transform_batch_id

    from distinct_lines
    where copy_number = 1

)

select * from final
