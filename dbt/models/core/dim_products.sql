with lines as (

    select * from {{ ref('fct_sales_lines') }}

),

-- a product's description: the one used on most lines (ties: alphabetical); codes may have several
descriptions as (

    select
        stock_code,
        description,
        row_number() over (partition by stock_code order by count(*) desc, description) as rank_in_code
    from lines
    where description is not null
    group by stock_code, description

),

-- a code is a product when it is sold, given away or moved in stock on regular invoices, and
-- never used as postage, a fee, a discount or another non-product code (line types are decided
-- by code before quantity and price, so one such line settles it)
products as (

    select
        stock_code,
        count(distinct description) as description_variants,
        sum(case when line_type in ('sale', 'free_item', 'stock_adjustment') then 1 else 0 end) > 0
            and sum(case when line_type in ('postage', 'fee', 'discount', 'non_product') then 1 else 0 end) = 0
            as is_product,
        count(*) as lines
    from lines
    group by stock_code

),

final as (

    select
        products.stock_code,
        descriptions.description,
        products.description_variants,
        products.is_product,
        products.lines
    from products
    left join descriptions
        on descriptions.stock_code = products.stock_code
        and descriptions.rank_in_code = 1

)

select * from final
