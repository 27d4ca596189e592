{#- The revenue definitions, written once (see the `revenue_definitions` docs block in
    models/docs.md). Every mart takes its money columns from these macros. -#}

{#- line_type (retail_pipeline.schema.LINE_TYPES) -> revenue bucket -#}
{% macro revenue_buckets() -%}
  {{ return({
      'sale': 'gross_sales',
      'free_item': 'gross_sales',
      'postage': 'shipping',
      'cancellation': 'cancellations',
      'discount': 'adjustments',
      'non_product': 'adjustments',
      'fee': 'excluded',
      'bad_debt_adjustment': 'excluded',
      'stock_adjustment': 'excluded',
  }) }}
{%- endmacro %}

{#- The buckets that make up net revenue. -#}
{% macro net_revenue_buckets() -%}
  {{ return(['gross_sales', 'shipping', 'cancellations', 'adjustments']) }}
{%- endmacro %}

{#- The revenue bucket of a line; null for a line type the definitions do not know
    (a data test fails on that, so a new line type cannot slip in silently). -#}
{% macro revenue_bucket(line_type) -%}
    case {{ line_type }}
    {%- for type, bucket in revenue_buckets().items() %}
        when '{{ type }}' then '{{ bucket }}'
    {%- endfor %}
    end
{%- endmacro %}

{#- Measures over rows of int_sales_by_invoice (`revenue_bucket`, `amount`, `quantity`, `line_count`,
    `invoice_no`, `customer_id`: sums of lines, so the sums here add them up again and the distinct
    counts count invoices and customers). An order is an invoice with at least one gross-sales line. -#}
{% macro revenue_measures() -%}
        sum(case when revenue_bucket = 'gross_sales' then amount else 0 end) as gross_sales,
        sum(case when revenue_bucket = 'shipping' then amount else 0 end) as shipping,
        sum(case when revenue_bucket = 'cancellations' then amount else 0 end) as cancellations,
        sum(case when revenue_bucket = 'adjustments' then amount else 0 end) as adjustments,
        sum(case when revenue_bucket in ('{{ net_revenue_buckets() | join("', '") }}') then amount else 0 end)
            as net_revenue,
        sum(case when revenue_bucket = 'excluded' then amount else 0 end) as excluded_amount,
        count(distinct case when revenue_bucket = 'gross_sales' then invoice_no end) as orders,
        count(distinct case when revenue_bucket = 'gross_sales' then customer_id end) as customers,
        cast(sum(case when revenue_bucket = 'gross_sales' then quantity else 0 end) as {{ dbt.type_bigint() }})
            as items_sold,
        count(distinct case when revenue_bucket = 'cancellations' then invoice_no end) as cancelled_invoices,
        cast(sum(line_count) as {{ dbt.type_bigint() }}) as lines
{%- endmacro %}

{#- Ratios over the columns revenue_measures() produced (select them from a CTE). -#}
{% macro revenue_ratios() -%}
        {{ money_per('gross_sales', 'orders') }} as average_order_value,
        round({{ safe_divide('items_sold', 'orders') }}, 2) as items_per_order,
        {{ ratio(safe_divide('-1 * cancellations', 'gross_sales'), 4) }} as cancellation_rate
{%- endmacro %}
