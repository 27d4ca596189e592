with lines as (

    select * from {{ ref('int_sales_by_invoice') }}

),

-- one row per customer and month in which the customer placed an order
active_months as (

    select distinct
        customer_id,
        invoice_month as activity_month
    from lines
    where revenue_bucket = 'gross_sales'
      and customer_id is not null

),

cohorts as (

    select
        customer_id,
        min(activity_month) as cohort_month
    from active_months
    group by customer_id

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_size
    from cohorts
    group by cohort_month

),

-- every month with orders in the data: the grid is cohort x each month from the cohort's on
calendar as (

    select distinct activity_month from active_months

),

activity as (

    select
        cohorts.cohort_month,
        active_months.activity_month,
        count(*) as active_customers
    from active_months
    inner join cohorts on cohorts.customer_id = active_months.customer_id
    group by cohorts.cohort_month, active_months.activity_month

),

final as (

    select
        cohort_sizes.cohort_month,
        calendar.activity_month,
        cast({{ month_number('calendar.activity_month') }} - {{ month_number('cohort_sizes.cohort_month') }} as {{ dbt.type_int() }})
            as months_since_first_order,
        cohort_sizes.cohort_size,
        coalesce(activity.active_customers, 0) as active_customers,
        round({{ safe_divide('coalesce(activity.active_customers, 0)', 'cohort_sizes.cohort_size') }}, 4)
            as retention_rate
    from cohort_sizes
    inner join calendar on calendar.activity_month >= cohort_sizes.cohort_month
    left join activity
        on activity.cohort_month = cohort_sizes.cohort_month
        and activity.activity_month = calendar.activity_month

)

select * from final
