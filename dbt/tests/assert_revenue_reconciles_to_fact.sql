-- Net revenue + excluded amount of the monthly and daily marts = the sum of all fact amounts,
-- month by month, to the cent.
with fact as (
    select invoice_month, sum(amount) as amount from {{ ref('fct_sales_lines') }} group by invoice_month
),
monthly as (
    select invoice_month, net_revenue + excluded_amount as amount from {{ ref('mart_revenue_monthly') }}
),
daily as (
    select invoice_month, sum(net_revenue + excluded_amount) as amount
    from {{ ref('mart_revenue_daily') }} group by invoice_month
)
select fact.invoice_month, fact.amount as fact_amount, monthly.amount as monthly_amount, daily.amount as daily_amount
from fact
full outer join monthly on monthly.invoice_month = fact.invoice_month
full outer join daily on daily.invoice_month = coalesce(fact.invoice_month, monthly.invoice_month)
where fact.amount is null or monthly.amount is null or daily.amount is null
   or fact.amount <> monthly.amount or fact.amount <> daily.amount
