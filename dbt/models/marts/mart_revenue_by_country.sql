with lines as (

    select * from {{ ref('fct_sales_lines') }}

),

final as (

    select
        coalesce(country, 'Unknown') as country,
        sum(case when line_type = 'sale' then amount else 0 end) as gross_sales,
        sum(case when line_type = 'cancellation' then amount else 0 end) as cancellations,
        sum(amount) as net_amount,
        count(distinct case when line_type = 'sale' then invoice_no end) as orders,
        count(distinct customer_id) as customers
    from lines
    group by coalesce(country, 'Unknown')

)

select * from final
