with lines as (

    select * from {{ ref('int_sales_by_invoice') }}

),

measures as (

    select
        invoice_date,
        invoice_month,
{{ revenue_measures() }}
    from lines
    group by invoice_date, invoice_month

),

final as (

    select
        *,
{{ revenue_ratios() }}
    from measures

)

select * from final
