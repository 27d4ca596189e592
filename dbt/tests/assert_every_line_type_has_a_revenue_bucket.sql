-- The revenue definitions (macros/revenue.sql) must place every line type of the fact in a bucket.
select line_type, count(*) as lines
from {{ ref('fct_sales_lines') }}
where {{ revenue_bucket('line_type') }} is null
group by line_type
