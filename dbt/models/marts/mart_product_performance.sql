with lines as (

    select
        *,
        {{ revenue_bucket('line_type') }} as revenue_bucket
    from {{ ref('fct_sales_lines') }}

),

products as (

    select * from {{ ref('dim_products') }}
    where is_product

),

measures as (

    select
        lines.stock_code,
        cast(sum(case when revenue_bucket = 'gross_sales' then quantity else 0 end) as {{ dbt.type_bigint() }})
            as units_sold,
        cast(-1 * sum(case when revenue_bucket = 'cancellations' then quantity else 0 end) as {{ dbt.type_bigint() }})
            as units_cancelled,
        sum(case when revenue_bucket = 'gross_sales' then amount else 0 end) as gross_sales,
        sum(case when revenue_bucket = 'cancellations' then amount else 0 end) as cancellations,
        sum(case when revenue_bucket in ('{{ net_revenue_buckets() | join("', '") }}') then amount else 0 end)
            as net_revenue,
        count(distinct case when revenue_bucket = 'gross_sales' then invoice_no end) as orders,
        count(distinct case when revenue_bucket = 'gross_sales' then customer_id end) as customers
    from lines
    inner join products on products.stock_code = lines.stock_code
    group by lines.stock_code

),

-- products by net revenue, largest first; ties by stock code
ranked as (

    select
        *,
        row_number() over (order by net_revenue desc, stock_code) as revenue_rank,
        sum(case when net_revenue > 0 then net_revenue else 0 end) over () as total_positive_net_revenue,
        sum(case when net_revenue > 0 then net_revenue else 0 end) over (
            order by net_revenue desc, stock_code
            rows between unbounded preceding and 1 preceding
        ) as net_revenue_ranked_above
    from measures

),

final as (

    select
        ranked.stock_code,
        products.description,
        ranked.units_sold,
        ranked.units_cancelled,
        ranked.gross_sales,
        ranked.cancellations,
        ranked.net_revenue,
        ranked.orders,
        ranked.customers,
        ranked.revenue_rank,
        {{ ratio(safe_divide('ranked.net_revenue', 'ranked.total_positive_net_revenue'), 6) }} as share_of_net_revenue,
        {{ ratio(safe_divide('coalesce(ranked.net_revenue_ranked_above, 0)'
                            ' + case when ranked.net_revenue > 0 then ranked.net_revenue else 0 end',
                            'ranked.total_positive_net_revenue'), 6) }} as cumulative_share,
        case
            when ranked.net_revenue <= 0 then 'C'
            when coalesce(ranked.net_revenue_ranked_above, 0) < {{ var('abc_class_a_share') }} * ranked.total_positive_net_revenue
                then 'A'
            when coalesce(ranked.net_revenue_ranked_above, 0) < {{ var('abc_class_b_share') }} * ranked.total_positive_net_revenue
                then 'B'
            else 'C'
        end as abc_class
    from ranked
    inner join products on products.stock_code = ranked.stock_code

)

select * from final
