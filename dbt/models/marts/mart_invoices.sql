{#- One row per invoice: the grain the dashboard filters by day and country in the browser, and
    the order-level view for analysts. -#}
with lines as (

    select
        *,
        coalesce(country, 'Unknown') as country_name,
        {{ revenue_bucket('line_type') }} as revenue_bucket
    from {{ ref('fct_sales_lines') }}

),

final as (

    select
        ---------- ids
        invoice_no,
        invoice_date,
        invoice_month,
        country_name as country,
        customer_id,

        ---------- what kind of invoice
        max(case when revenue_bucket = 'gross_sales' then 1 else 0 end) = 1 as is_order,
        max(case when revenue_bucket = 'cancellations' then 1 else 0 end) = 1 as is_cancellation,

        ---------- money, GBP (the revenue buckets of the revenue marts)
        sum(case when revenue_bucket = 'gross_sales' then amount else 0 end) as gross_sales,
        sum(case when revenue_bucket = 'shipping' then amount else 0 end) as shipping,
        sum(case when revenue_bucket = 'cancellations' then amount else 0 end) as cancellations,
        sum(case when revenue_bucket = 'adjustments' then amount else 0 end) as adjustments,
        sum(case when revenue_bucket in ('{{ net_revenue_buckets() | join("', '") }}') then amount else 0 end)
            as net_revenue,
        sum(case when revenue_bucket = 'excluded' then amount else 0 end) as excluded_amount,

        ---------- counts
        cast(sum(case when revenue_bucket = 'gross_sales' then quantity else 0 end) as {{ dbt.type_bigint() }})
            as items_sold,
        count(*) as lines
    from lines
    group by invoice_no, invoice_date, invoice_month, country_name, customer_id

)

select * from final
