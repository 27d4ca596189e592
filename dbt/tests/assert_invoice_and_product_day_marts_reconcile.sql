-- mart_invoices holds every fact line once: per month, its lines and net revenue + excluded amount
-- equal the fact's; mart_product_sales_daily summed per product equals mart_product_performance.
with fact as (
    select invoice_month, count(*) as lines, sum(amount) as amount
    from {{ ref('fct_sales_lines') }} group by invoice_month
),
invoices as (
    select invoice_month, sum(lines) as lines, sum(net_revenue + excluded_amount) as amount
    from {{ ref('mart_invoices') }} group by invoice_month
),
months as (
    select coalesce(fact.invoice_month, invoices.invoice_month) as invoice_month, 'mart_invoices' as mart
    from fact
    full outer join invoices on invoices.invoice_month = fact.invoice_month
    where fact.lines is null or invoices.lines is null or fact.lines <> invoices.lines or fact.amount <> invoices.amount
),
product_days as (
    select stock_code, sum(units_sold) as units_sold, sum(gross_sales) as gross_sales,
           sum(cancellations) as cancellations, sum(net_revenue) as net_revenue
    from {{ ref('mart_product_sales_daily') }} group by stock_code
),
products as (
    select products.stock_code, 'mart_product_sales_daily' as mart
    from {{ ref('mart_product_performance') }} as products
    left join product_days on product_days.stock_code = products.stock_code
    where coalesce(product_days.units_sold, 0) <> products.units_sold
       or coalesce(product_days.gross_sales, 0) <> products.gross_sales
       or coalesce(product_days.cancellations, 0) <> products.cancellations
       or coalesce(product_days.net_revenue, 0) <> products.net_revenue
)
select cast(invoice_month as {{ dbt.type_string() }}) as failing_key, mart from months
union all
select stock_code as failing_key, mart from products
