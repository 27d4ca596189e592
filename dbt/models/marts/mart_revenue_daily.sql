with lines as (

    select
        *,
        {{ revenue_bucket('line_type') }} as revenue_bucket
    from {{ ref('fct_sales_lines') }}

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
