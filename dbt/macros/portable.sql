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
