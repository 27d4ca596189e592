with lines as (

    select * from {{ ref('fct_sales_lines') }}

),

final as (

    select
        invoice_date,
        sum(case when line_type = 'sale' then amount else 0 end) as gross_sales,
        sum(case when line_type = 'cancellation' then amount else 0 end) as cancellations,
        sum(amount) as net_amount,
        count(distinct case when line_type = 'sale' then invoice_no end) as orders,
        count(distinct case when line_type = 'sale' then customer_id end) as customers,
        count(*) as lines
    from lines
    group by invoice_date

)

select * from final
