{{
  config(
    partition_by=({'field': 'invoice_date', 'data_type': 'date', 'granularity': 'day'}
                  if target.type == 'bigquery' else none),
    cluster_by=(['customer_id'] if target.type == 'bigquery' else none),
  )
}}

with lines as (

    select * from {{ ref('stg_sales_lines') }}

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
        line_id,
        invoice_no,
        stock_code,
        customer_id,
        description,
        country,
        line_type,
        quantity,
        unit_price,
        amount,
        invoice_datetime,
        invoice_date,
        invoice_month,
        batch_id,
        source_uri,
        source_generation,
        source_sheet,
        source_row
    from distinct_lines
    where copy_number = 1

)

select * from final
