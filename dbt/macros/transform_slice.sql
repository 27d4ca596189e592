{#- The transform slice: the invoice months a batch touched, handed to dbt through a small table
    instead of --vars (a --vars value that changes per batch makes dbt parse the whole project
    again; a table leaves the saved parse valid from batch to batch).

    1. The transform queues the batch's months (`dbt run-operation queue_transform_slice --args
       '{"batch_id": "...", "months": ["2011-01", ...]}'`): one row per month, unclaimed.
    2. A run that builds the fact claims every unclaimed row (on-run-start, claimed_by = its
       invocation id); rows claimed by a run that died hours ago are claimed again. The fact reads
       only this run's claim, so concurrent runs never see each other's rows change under them.
    3. The fact deletes the claimed rows in its post-hook (in the fact's transaction on DuckDB).
    4. on-run-end gives back whatever this run claimed and did not consume (the fact failed): the
       next run rewrites those months.
    Rewriting a month is idempotent (it is recomputed from every raw line of the month), so a month
    claimed twice or queued by two batches is simply rewritten by whichever run gets it. -#}

{#- Hours after which a claim whose run never finished counts as abandoned (the job's timeout is 1 h). -#}
{% macro transform_slice_claim_hours() -%}{{ return(2) }}{%- endmacro %}

{% macro transform_slice_relation() -%}
  {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier='transform_slice')) }}
{%- endmacro %}

{#- CREATE TABLE IF NOT EXISTS for the slice table (and its schema): a statement to run. -#}
{% macro create_transform_slice_sql() -%}
  {%- set relation = transform_slice_relation() -%}
  {#- on BigQuery the dataset is Terraform's and the job may not create datasets (project-level) -#}
  {%- if target.type != 'bigquery' -%}{%- do adapter.create_schema(relation) -%}{%- endif -%}
  create table if not exists {{ relation }} (
    batch_id {{ dbt.type_string() }} not null,
    invoice_month date not null,
    queued_at {{ dbt.type_timestamp() }} not null,
    claimed_by {{ dbt.type_string() }},
    claimed_at {{ dbt.type_timestamp() }}
  )
{%- endmacro %}

{#- A batch id as a SQL literal, validated (ids are hex hashes; anything else is refused). -#}
{% macro slice_batch_literal(batch_id) -%}
  {%- if batch_id is not string or not modules.re.match('^[A-Za-z0-9_.:-]{1,128}$', batch_id) -%}
    {{ exceptions.raise_compiler_error("batch_id must be a plain id, got " ~ batch_id) }}
  {%- endif -%}
  '{{ batch_id }}'
{%- endmacro %}

{#- run-operation: queue a batch's invoice months (YYYY-MM) for the next run that builds the fact. -#}
{% macro queue_transform_slice(batch_id, months) -%}
  {%- if months is string -%}{%- set months = [months] -%}{%- endif -%}
  {%- for month in months -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])$', month | string) -%}
      {{ exceptions.raise_compiler_error("months must be invoice months as YYYY-MM, got " ~ month) }}
    {%- endif -%}
  {%- endfor -%}
  {%- set batch = slice_batch_literal(batch_id) -%}
  {%- do run_query(create_transform_slice_sql()) -%}
  {%- if months -%}
    {%- set insert -%}
      insert into {{ transform_slice_relation() }} (batch_id, invoice_month, queued_at)
      {% for month in months | unique | sort -%}
        {% if not loop.first %}union all {% endif -%}
        select {{ batch }}, {{ date_literal(month ~ '-01') }}, {{ dbt.current_timestamp() }}
      {% endfor %}
    {%- endset -%}
    {%- do run_query(insert) -%}
    {%- do adapter.commit() if target.type != 'bigquery' -%}
  {%- endif -%}
  {{ log("queued " ~ (months | length) ~ " month(s) of batch " ~ batch_id ~ " for the fact", info=True) }}
{%- endmacro %}

{#- on-run-start: a run that builds the fact claims every unclaimed (or abandoned) queued month. -#}
{% macro claim_transform_slice() -%}
  {%- if not execute or 'model.retail.fct_sales_lines' not in selected_resources -%}
    {{ return('') }}
  {%- endif -%}
  {{ create_transform_slice_sql() }};
  update {{ transform_slice_relation() }}
  set claimed_by = '{{ invocation_id }}', claimed_at = {{ dbt.current_timestamp() }}
  where claimed_by is null
     or claimed_at < {{ dbt.dateadd('hour', -1 * transform_slice_claim_hours(), dbt.current_timestamp()) }}
{%- endmacro %}

{#- This run's claimed months: a list of (YYYY-MM, batch id) pairs, one per month (the largest
    batch id when two batches queued the same month). Empty at parse time and for a run that
    claimed nothing (a manual build). -#}
{% macro transform_slice() -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set relation = adapter.get_relation(database=target.database, schema=target.schema,
                                          identifier='transform_slice') -%}
  {%- if relation is none -%}{{ return([]) }}{%- endif -%}
  {%- set query -%}
    select invoice_month, max(batch_id) as batch_id from {{ relation }}
    where claimed_by = '{{ invocation_id }}'
    group by invoice_month
  {%- endset -%}
  {%- set pairs = [] -%}
  {%- for row in run_query(query).rows -%}
    {%- do pairs.append((row[0].strftime('%Y-%m'), row[1])) -%}
  {%- endfor -%}
  {{ return(pairs | sort) }}
{%- endmacro %}

{#- Post-hook of the fact: the claimed months are rewritten, so their rows leave the queue. -#}
{% macro consume_transform_slice() -%}
  {%- if not execute or adapter.get_relation(database=target.database, schema=target.schema,
                                             identifier='transform_slice') is none -%}
    {{ return('') }}
  {%- endif -%}
  delete from {{ transform_slice_relation() }} where claimed_by = '{{ invocation_id }}'
{%- endmacro %}

{#- on-run-end: when the fact did not succeed, give this run's claim back to the queue. -#}
{% macro release_transform_slice(results) -%}
  {%- if not execute or 'model.retail.fct_sales_lines' not in selected_resources -%}
    {{ return('') }}
  {%- endif -%}
  {%- for result in results if result.node.unique_id == 'model.retail.fct_sales_lines'
                               and result.status == 'success' -%}
    {{ return('') }}
  {%- endfor -%}
  update {{ transform_slice_relation() }} set claimed_by = null, claimed_at = null
  where claimed_by = '{{ invocation_id }}'
{%- endmacro %}
