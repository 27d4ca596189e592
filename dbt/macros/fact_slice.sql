{#- The slice of the incremental fact a run rewrites.

    The slice is the invoice months this run claimed from the transform slice table (queued by the
    transform for the batches it runs, see transform_slice.sql) plus the months that still hold
    fact lines of a batch that is no longer in raw.batches (a superseded generation: the loader
    deleted its raw lines, so its months must be rebuilt even when the new generation does not
    touch them). Months are YYYY-MM text; dates are first days of months. -#}

{#- The months this run claimed. -#}
{% macro batch_months() -%}
  {%- set months = [] -%}
  {%- for month, _batch in transform_slice() -%}{%- do months.append(month) -%}{%- endfor -%}
  {{ return(months) }}
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

{#- The batch whose transform writes a row of the given invoice month (a SQL expression): the batch
    that queued the month in this run's slice, null for other months and for a manual build. -#}
{% macro transform_batch_id(month_column) -%}
  {%- set slice = transform_slice() -%}
  {%- if not slice -%}
    cast(null as {{ dbt.type_string() }})
  {%- else -%}
    case {{ month_column }}
    {%- for month, batch_id in slice %}
      when {{ date_literal(month ~ '-01') }} then {{ slice_batch_literal(batch_id) }}
    {%- endfor %}
    end
  {%- endif -%}
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

{#- The day partitions of every month the run rewrites, as BigQuery date literals. -#}
{% macro fact_slice_partition_days() -%}
  {%- set days = [] -%}
  {%- for month in fact_slice_months() -%}
    {%- set year, mon = month.split('-') | map('int') | list -%}
    {%- set day = modules.datetime.date(year, mon, 1) -%}
    {%- for offset in range(31) -%}
      {%- set d = day + modules.datetime.timedelta(days=offset) -%}
      {%- if d.month == mon -%}{%- do days.append(date_literal(d.isoformat()) | trim) -%}{%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(days) }}
{%- endmacro %}

{#- BigQuery: the fact's insert_overwrite with static partitions known only at run time.

    This overrides dbt-bigquery's own `bq_insert_overwrite_sql` (dbt-bigquery 1.12, pinned), which
    picks the static form (one MERGE that replaces the listed day partitions atomically) when the
    model's `partitions` config lists them, the dynamic form otherwise. A `partitions` config is
    fixed when the project is parsed, so for the fact it is empty; here the fact's partitions are
    the days of its slice, read when the model runs. A run whose slice is empty writes nothing.
    Every other model keeps dbt-bigquery's behaviour. -#}
{% macro bq_insert_overwrite_sql(
    tmp_relation, target_relation, sql, unique_key, partition_by, partitions, dest_columns, tmp_relation_exists, copy_partitions
) %}
  {%- if partitions is none and model.unique_id == 'model.retail.fct_sales_lines' -%}
    {%- set partitions = fact_slice_partition_days() -%}
    {%- if not partitions -%}
      {{ return('select 1 as nothing_to_rewrite') }}
    {%- endif -%}
  {%- endif -%}
  {%- if partitions is not none and partitions != [] -%}
    {{ bq_static_insert_overwrite_sql(tmp_relation, target_relation, sql, partition_by, partitions, dest_columns, tmp_relation_exists, copy_partitions) }}
  {%- else -%}
    {{ bq_dynamic_insert_overwrite_sql(tmp_relation, target_relation, sql, unique_key, partition_by, dest_columns, tmp_relation_exists, copy_partitions) }}
  {%- endif -%}
{% endmacro %}
