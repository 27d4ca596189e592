{#- Product sales by day and country: the slice the dashboard's top-products chart sums over any
    date range and country. Products as in mart_product_performance (dim_products.is_product). -#}
with lines as (

    select
        *,
        coalesce(country, 'Unknown') as country_name,
        {{ revenue_bucket('line_type') }} as revenue_bucket
    from {{ ref('fct_sales_lines') }}

),

products as (

    select stock_code from {{ ref('dim_products') }}
    where is_product

),

final as (

    select
        lines.invoice_date,
        lines.invoice_month,
        lines.country_name as country,
        lines.stock_code,
        cast(sum(case when revenue_bucket = 'gross_sales' then quantity else 0 end) as {{ dbt.type_bigint() }})
            as units_sold,
        sum(case when revenue_bucket = 'gross_sales' then amount else 0 end) as gross_sales,
        sum(case when revenue_bucket = 'cancellations' then amount else 0 end) as cancellations,
        sum(amount) as net_revenue,
        count(distinct case when revenue_bucket = 'gross_sales' then invoice_no end) as orders
    from lines
    inner join products on products.stock_code = lines.stock_code
    where lines.revenue_bucket in ('{{ net_revenue_buckets() | join("', '") }}')
    group by lines.invoice_date, lines.invoice_month, lines.country_name, lines.stock_code

)

select * from final
