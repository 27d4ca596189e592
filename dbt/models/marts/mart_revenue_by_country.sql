with lines as (

    select
        *,
        coalesce(country, 'Unknown') as country_name
    from {{ ref('int_sales_by_invoice') }}

),

measures as (

    select
        country_name as country,
{{ revenue_measures() }}
    from lines
    group by country_name

),

final as (

    select
        *,
{{ revenue_ratios() }},
        {{ ratio(safe_divide('net_revenue', 'sum(net_revenue) over ()'), 6) }} as share_of_net_revenue,
        row_number() over (order by net_revenue desc, country) as revenue_rank
    from measures

)

select * from final
