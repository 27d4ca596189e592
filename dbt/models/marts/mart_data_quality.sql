{#- Where every source row went, per batch: rows read = the sum of `rows` over the batch's rows
    of this mart (checked by a data test). -#}
with batches as (

    select * from {{ ref('stg_batches') }}

),

quarantine as (

    select * from {{ ref('stg_quarantine') }}

),

fact_lines as (

    select batch_id, count(*) as lines_in_fact
    from {{ ref('fct_sales_lines') }}
    group by batch_id

),

quarantined_by_reason as (

    select batch_id, reason, count(*) as row_count
    from quarantine
    group by batch_id, reason

),

quarantined_loaded as (

    select batch_id, sum(row_count) as row_count
    from quarantined_by_reason
    group by batch_id

),

outcomes as (

    -- typed, distinct rows written to the lake and loaded
    select batch_id, 'loaded' as outcome, 'ok' as reason, rows_loaded as row_count
    from batches where state = 'ingested'

    union all

    -- exact duplicates of another row of the same source, removed by ingest
    select batch_id, 'duplicate' as outcome, 'exact_duplicate_in_source' as reason, rows_duplicate as row_count
    from batches where state = 'ingested'

    union all

    select batch_id, 'quarantined' as outcome, reason, row_count
    from quarantined_by_reason

    union all

    -- quarantined rows whose object is not loaded into the warehouse yet
    select batches.batch_id, 'quarantined' as outcome, 'pending_load' as reason,
           batches.rows_quarantined - coalesce(quarantined_loaded.row_count, 0) as row_count
    from batches
    left join quarantined_loaded on quarantined_loaded.batch_id = batches.batch_id
    where batches.state = 'ingested'
      and batches.rows_quarantined <> coalesce(quarantined_loaded.row_count, 0)

    union all

    -- a file rejected as a whole (too large, not a workbook, wrong columns, ...)
    select batch_id, 'rejected' as outcome, 'file_rejected' as reason, rows_read as row_count
    from batches where state = 'rejected'

),

final as (

    select
        ---------- ids
        batches.batch_id,
        batches.source_uri,
        batches.source_generation,
        batches.state,
        batches.ingested_at,

        ---------- the outcome and its rows
        outcomes.outcome,
        outcomes.reason,
        cast(outcomes.row_count as {{ dbt.type_bigint() }}) as row_count,
        round({{ safe_divide('outcomes.row_count', 'batches.rows_read') }}, 6) as share_of_rows_read,

        ---------- batch totals, repeated on each of the batch's rows (do not sum them across rows)
        batches.rows_read,
        batches.rows_loaded,
        batches.rows_quarantined,
        batches.rows_duplicate,
        coalesce(fact_lines.lines_in_fact, 0) as lines_in_fact,
        batches.error
    from outcomes
    inner join batches on batches.batch_id = outcomes.batch_id
    left join fact_lines on fact_lines.batch_id = batches.batch_id

)

select * from final
