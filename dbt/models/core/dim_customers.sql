-- the fact summed per invoice (int_sales_by_invoice): `line_count` counts the fact lines of each row
with lines as (

    select * from {{ ref('int_sales_by_invoice') }}
    where customer_id is not null

),

-- a customer's country: the one on most of their lines (ties: alphabetical)
countries as (

    select
        customer_id,
        country,
        row_number() over (partition by customer_id order by sum(line_count) desc, country) as rank_in_customer
    from lines
    group by customer_id, country

),

customers as (

    select
        customer_id,
        min(invoice_datetime) as first_invoice_at,
        max(invoice_datetime) as last_invoice_at,
        count(distinct invoice_no) as invoices,
        cast(sum(line_count) as {{ dbt.type_bigint() }}) as lines,
        sum(amount) as net_amount
    from lines
    group by customer_id

),

final as (

    select
        customers.customer_id,
        countries.country,
        customers.first_invoice_at,
        customers.last_invoice_at,
        customers.invoices,
        customers.lines,
        customers.net_amount
    from customers
    left join countries
        on countries.customer_id = customers.customer_id
        and countries.rank_in_customer = 1

)

select * from final
