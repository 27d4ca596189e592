{#- The slice of the incremental fact a batch rewrites.

    The transform passes the invoice months the batch touched: --vars '{"batch_id": "...",
    "partitions": ["2011-01", ...]}'. The slice is those months plus the months that still hold
    fact lines of a batch that is no longer in raw.batches (a superseded generation: the loader
    deleted its raw lines, so its months must be rebuilt even when the new generation does not
    touch them). Months are YYYY-MM text; dates are first days of months. -#}

{#- The months passed in by the batch, validated. -#}
{% macro batch_months() -%}
  {%- set months = var('partitions', []) or [] -%}
  {%- if months is string -%}{%- set months = [months] -%}{%- endif -%}
  {%- for month in months -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])$', month | string) -%}
      {{ exceptions.raise_compiler_error("var 'partitions' must list invoice months as YYYY-MM, got " ~ month) }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(months | map('string') | unique | sort | list) }}
{%- endmacro %}

{#- Months of the fact that hold lines of batches no longer in raw.batches (run at execution). -#}
{% macro stale_fact_months() -%}
  {%- if not execute or not is_incremental() -%}{{ return([]) }}{%- endif -%}
  {%- set query -%}
    select distinct invoice_month from {{ this }}
    where batch_id not in (select batch_id from {{ source('raw', 'batches') }})
  {%- endset -%}
  {%- set months = [] -%}
  {%- for row in run_query(query).rows -%}
    {%- do months.append(row[0].strftime('%Y-%m')) -%}
  {%- endfor -%}
  {{ return(months | sort | list) }}
{%- endmacro %}

{#- Every month the incremental run rewrites. -#}
{% macro fact_slice_months() -%}
  {{ return((batch_months() + stale_fact_months()) | unique | sort | list) }}
{%- endmacro %}

{#- First day of the month after a YYYY-MM month, as YYYY-MM-DD. -#}
{% macro next_month_start(month) -%}
  {%- set year, mon = month.split('-') | map('int') | list -%}
  {{ return('%04d-%02d-01' % ((year + 1, 1) if mon == 12 else (year, mon + 1))) }}
{%- endmacro %}

{#- A predicate on a date column selecting the given months (prunes day partitions). -#}
{% macro months_predicate(date_column, months) -%}
  {%- if not months -%}
    (1 = 0)
  {%- else -%}
    ({% for month in months %}{% if not loop.first %} or {% endif -%}
      ({{ date_column }} >= {{ date_literal(month ~ '-01') }} and {{ date_column }} < {{ date_literal(next_month_start(month)) }})
    {%- endfor %})
  {%- endif -%}
{%- endmacro %}

{#- BigQuery insert_overwrite (static): the day partitions of the batch's months. -#}
{% macro batch_partition_days() -%}
  {%- set days = [] -%}
  {%- for month in batch_months() -%}
    {%- set year, mon = month.split('-') | map('int') | list -%}
    {%- set day = modules.datetime.date(year, mon, 1) -%}
    {%- for offset in range(31) -%}
      {%- set d = day + modules.datetime.timedelta(days=offset) -%}
      {%- if d.month == mon -%}{%- do days.append(date_literal(d.isoformat()) | trim) -%}{%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(days) }}
{%- endmacro %}

{#- DuckDB incremental strategy of the fact ('fact_slice'): delete the slice's months, insert the
    new rows, both inside the materialization's one transaction and after any schema change (DuckDB
    refuses a DELETE before an ALTER of the same table in one transaction, so no pre-hook here). -#}
{% macro get_incremental_fact_slice_sql(arg_dict) -%}
  {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
  delete from {{ arg_dict['target_relation'] }} where {{ months_predicate('invoice_date', fact_slice_months()) }};
  insert into {{ arg_dict['target_relation'] }} ({{ columns }})
  select {{ columns }} from {{ arg_dict['temp_relation'] }}
{%- endmacro %}

{#- Pre-hook of the fact on BigQuery: insert_overwrite replaces the day partitions of the batch's
    months (static `partitions` config); the stale months the batch did not name are deleted here
    first. Nothing to do on other adapters (see get_incremental_fact_slice_sql). -#}
{% macro fact_delete_slice() -%}
  {%- if not is_incremental() -%}{{ return('') }}{%- endif -%}
  {{ return(adapter.dispatch('fact_delete_slice', 'retail')()) }}
{%- endmacro %}

{% macro default__fact_delete_slice() -%}
{%- endmacro %}

{% macro bigquery__fact_delete_slice() -%}
  {%- set named = batch_months() -%}
  {%- set months = [] -%}
  {%- for month in stale_fact_months() if month not in named -%}{%- do months.append(month) -%}{%- endfor -%}
  {%- if months -%}
    delete from {{ this }} where {{ months_predicate('invoice_date', months) }}
  {%- endif -%}
{%- endmacro %}

{#- The batch id passed in var('batch_id') as a SQL literal (null when none), validated. -#}
{% macro batch_id_literal() -%}
  {%- set batch_id = var('batch_id', none) -%}
  {%- if batch_id is none or batch_id == '' -%}
    cast(null as {{ dbt.type_string() }})
  {%- elif modules.re.match('^[A-Za-z0-9_.:-]{1,128}$', batch_id | string) -%}
    '{{ batch_id }}'
  {%- else -%}
    {{ exceptions.raise_compiler_error("var 'batch_id' must be a plain id, got " ~ batch_id) }}
  {%- endif -%}
{%- endmacro %}
