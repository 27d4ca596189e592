-- Nothing is lost silently: for every batch whose objects are all loaded,
-- rows read = rows loaded + rows quarantined + duplicate rows removed,
-- the raw table holds exactly rows_loaded lines and the quarantine exactly rows_quarantined,
-- and every raw line of the batch is present in the fact (by line_id).
with batches as (
    select * from {{ ref('stg_batches') }} where state = 'ingested'
),
ledger as (
    select batch_id, sum(case when kind = 'sales' then rows else 0 end) as ledger_sales,
           sum(case when kind = 'quarantine' then rows else 0 end) as ledger_quarantine
    from {{ source('pipeline', 'load_ledger') }}
    group by batch_id
),
raw_lines as (
    select batch_id, count(*) as n from {{ ref('stg_sales_lines') }} group by batch_id
),
raw_quarantine as (
    select batch_id, count(*) as n from {{ ref('stg_quarantine') }} group by batch_id
),
-- checked for the batches this run transformed (the batches whose queued months it rewrote: an
-- incremental run leaves other batches' months alone, and a batch still waiting for its own run is
-- not this run's failure); for every batch when the run rewrote nothing for a batch (a manual build)
-- and, of those, the months this run rewrote: a concurrent run (another job execution) may hold the
-- batch's other months, which it checks itself
this_run as (
    select distinct transform_batch_id as batch_id, invoice_month from {{ ref('fct_sales_lines') }}
    where dbt_invocation_id = '{{ invocation_id }}' and transform_batch_id is not null
),
missing_from_fact as (
    select s.batch_id, count(*) as n
    from {{ ref('stg_sales_lines') }} s
    left join {{ ref('fct_sales_lines') }} f on f.line_id = s.line_id
    where f.line_id is null
      and ((s.batch_id in (select batch_id from this_run) and s.invoice_month in (select invoice_month from this_run))
           or not exists (select 1 from this_run))
    group by s.batch_id
)
select b.batch_id, b.rows_read, b.rows_loaded, b.rows_quarantined, b.rows_duplicate,
       coalesce(r.n, 0) as raw_rows, coalesce(q.n, 0) as quarantine_rows, coalesce(m.n, 0) as missing_from_fact
from batches b
join ledger l on l.batch_id = b.batch_id
left join raw_lines r on r.batch_id = b.batch_id
left join raw_quarantine q on q.batch_id = b.batch_id
left join missing_from_fact m on m.batch_id = b.batch_id
where l.ledger_sales = b.rows_loaded and l.ledger_quarantine = b.rows_quarantined  -- batch fully loaded
  and (b.rows_loaded + b.rows_quarantined + b.rows_duplicate <> b.rows_read
       or coalesce(r.n, 0) <> b.rows_loaded
       or coalesce(q.n, 0) <> b.rows_quarantined
       or coalesce(m.n, 0) > 0)
