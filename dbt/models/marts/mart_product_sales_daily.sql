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

-- one row per invoice first: an invoice counts as an order of the day, country and product when
-- any of its lines there is a gross sale (two plain aggregations instead of a distinct count)
by_invoice as (

    select
        lines.invoice_date,
        lines.invoice_month,
        lines.country_name,
        lines.stock_code,
        lines.invoice_no,
        sum(case when revenue_bucket = 'gross_sales' then quantity else 0 end) as units_sold,
        sum(case when revenue_bucket = 'gross_sales' then amount else 0 end) as gross_sales,
        sum(case when revenue_bucket = 'cancellations' then amount else 0 end) as cancellations,
        sum(amount) as net_revenue,
        max(case when revenue_bucket = 'gross_sales' then 1 else 0 end) as is_order
    from lines
    inner join products on products.stock_code = lines.stock_code
    where lines.revenue_bucket in ('{{ net_revenue_buckets() | join("', '") }}')
    group by lines.invoice_date, lines.invoice_month, lines.country_name, lines.stock_code, lines.invoice_no

),

final as (

    select
        invoice_date,
        invoice_month,
        country_name as country,
        stock_code,
        cast(sum(units_sold) as {{ dbt.type_bigint() }}) as units_sold,
        sum(gross_sales) as gross_sales,
        sum(cancellations) as cancellations,
        sum(net_revenue) as net_revenue,
        count(case when is_order = 1 then 1 end) as orders
    from by_invoice
    group by invoice_date, invoice_month, country_name, stock_code

)

select * from final
