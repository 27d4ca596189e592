{#- The fact summed to one row per invoice, invoice time, customer, country and revenue bucket:
    every measure the revenue, customer and cohort models need (sums, minimums and maximums, and
    distinct invoices and customers, which stay countable at this grain), from one pass over the
    fact instead of one per model. -#}
with lines as (

    select * from {{ ref('fct_sales_lines') }}

),

final as (

    select
        ---------- the grain
        invoice_no,
        invoice_datetime,
        invoice_date,
        invoice_month,
        customer_id,
        country,
        {{ revenue_bucket('line_type') }} as revenue_bucket,

        ---------- additive measures
        sum(amount) as amount,
        sum(quantity) as quantity,
        count(*) as line_count

    from lines
    group by 1, 2, 3, 4, 5, 6, 7

)

select * from final
