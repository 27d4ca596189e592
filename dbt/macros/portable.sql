{#- SQL that differs between DuckDB (default__) and BigQuery (bigquery__). -#}

{#- a / b, null when b is 0 -#}
{% macro safe_divide(numerator, denominator) -%}
  {{ return(adapter.dispatch('safe_divide', 'retail')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_divide(numerator, denominator) -%}
  (({{ numerator }}) / nullif({{ denominator }}, 0))
{%- endmacro %}

{% macro bigquery__safe_divide(numerator, denominator) -%}
  safe_divide({{ numerator }}, {{ denominator }})
{%- endmacro %}

{#- an amount of money rounded to pennies, as an exact decimal -#}
{% macro money(expression) -%}
  {{ return(adapter.dispatch('money', 'retail')(expression)) }}
{%- endmacro %}

{% macro default__money(expression) -%}
  cast(round({{ expression }}, 2) as decimal(18, 2))
{%- endmacro %}

{% macro bigquery__money(expression) -%}
  round(cast({{ expression }} as numeric), 2)
{%- endmacro %}

{#- months between two dates' months (whole calendar months), portable -#}
{% macro month_number(date_expression) -%}
  (extract(year from {{ date_expression }}) * 12 + extract(month from {{ date_expression }}))
{%- endmacro %}

{#- a date literal -#}
{% macro date_literal(iso_date) -%}
  date '{{ iso_date }}'
{%- endmacro %}

{#- a share or a rate, rounded: a double on both warehouses (BigQuery keeps NUMERIC / NUMERIC a NUMERIC,
    so without the cast a ratio of money would reach pandas as a Decimal there and a float on DuckDB) -#}
{% macro ratio(expression, places) -%}
  {{ return(adapter.dispatch('ratio', 'retail')(expression, places)) }}
{%- endmacro %}

{% macro default__ratio(expression, places) -%}
  cast(round({{ expression }}, {{ places }}) as double)
{%- endmacro %}

{% macro bigquery__ratio(expression, places) -%}
  cast(round({{ expression }}, {{ places }}) as float64)
{%- endmacro %}

{#- money divided by a positive count (an average order value), rounded half away from zero to
    pennies, exactly; null for a zero count. DuckDB divides decimals in double precision (322.935
    would round to 322.93), so there the division is done in whole ten-thousandths of a pound. -#}
{% macro money_per(amount, count) -%}
  {{ return(adapter.dispatch('money_per', 'retail')(amount, count)) }}
{%- endmacro %}

{% macro default__money_per(amount, count) -%}
  case when ({{ count }}) = 0 then null else cast(
      cast(sign({{ amount }}) * ((2 * abs(cast(({{ amount }}) * 10000 as hugeint)) + 100 * ({{ count }}))
                               // (200 * ({{ count }}))) as decimal(18, 0)) * 0.01 as decimal(18, 2)) end
{%- endmacro %}

{% macro bigquery__money_per(amount, count) -%}
  round(safe_divide(cast({{ amount }} as numeric), {{ count }}), 2)
{%- endmacro %}
