with lines as (

    select * from {{ ref('int_sales_by_invoice') }}

),

customers_dim as (

    select * from {{ ref('dim_customers') }}

),

-- the day after the last invoice day in the data: recency is measured from here
as_of as (

    select cast({{ dbt.dateadd('day', 1, 'max(invoice_date)') }} as date) as as_of_date
    from lines

),

customer_lines as (

    select * from lines
    where customer_id is not null

),

purchases as (

    select
        customer_id,
        min(case when revenue_bucket = 'gross_sales' then invoice_datetime end) as first_purchase_at,
        max(case when revenue_bucket = 'gross_sales' then invoice_datetime end) as last_purchase_at,
        min(case when revenue_bucket = 'gross_sales' then invoice_month end) as cohort_month,
        count(distinct case when revenue_bucket = 'gross_sales' then invoice_no end) as orders,
        cast(sum(case when revenue_bucket = 'gross_sales' then quantity else 0 end) as {{ dbt.type_bigint() }})
            as items_sold,
        sum(case when revenue_bucket = 'gross_sales' then amount else 0 end) as gross_sales,
        sum(case when revenue_bucket = 'cancellations' then amount else 0 end) as cancellations,
        sum(case when revenue_bucket in ('{{ net_revenue_buckets() | join("', '") }}') then amount else 0 end)
            as net_revenue
    from customer_lines
    group by customer_id

),

-- customers with at least one order
buyers as (

    select
        purchases.*,
        cast(purchases.first_purchase_at as date) as first_purchase_date,
        cast(purchases.last_purchase_at as date) as last_purchase_date,
        as_of.as_of_date
    from purchases
    cross join as_of
    where purchases.orders > 0

),

scored as (

    select
        *,
        {{ dbt.datediff('last_purchase_date', 'as_of_date', 'day') }} as recency_days,
        {{ score_lower_is_better(dbt.datediff('last_purchase_date', 'as_of_date', 'day'),
                                 var('rfm_recency_days')) }} as recency_score,
        {{ score_higher_is_better('orders', var('rfm_frequency_orders')) }} as frequency_score,
        {{ score_higher_is_better('net_revenue', var('rfm_monetary_gbp')) }} as monetary_score
    from buyers

),

final as (

    select
        scored.customer_id,
        customers_dim.country,
        scored.first_purchase_at,
        scored.last_purchase_at,
        scored.cohort_month,
        scored.orders,
        scored.items_sold,
        scored.gross_sales,
        scored.cancellations,
        scored.net_revenue,
        scored.as_of_date,
        scored.recency_days,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        concat(cast(scored.recency_score as {{ dbt.type_string() }}),
               cast(scored.frequency_score as {{ dbt.type_string() }}),
               cast(scored.monetary_score as {{ dbt.type_string() }})) as rfm_score,
        {{ rfm_segment('scored.recency_score', 'scored.frequency_score', 'scored.monetary_score') }} as segment
    from scored
    left join customers_dim on customers_dim.customer_id = scored.customer_id

)

select * from final
