{#- Every check of one model in one test (one query, so one dbt test node instead of one per check).
    Returns one row per violated check: `rule` (its name) and `failing_rows`; dbt's "Got N results"
    counts the violated checks. The checks:
      not_null: [column, ...]       rule <column>_not_null: the column is not null
      rules: {name: expression}     a row fails when the SQL boolean expression is not true (false or
                                    null), as the former expression_is_true test; an accepted-values
                                    check is `column is null or column in (...)` (dbt's
                                    accepted_values lets nulls by)
      unique: [column | [column, ...], ...]
                                    rule <columns>_unique. One column: no value twice, nulls left out
                                    (dbt's unique); a list: no combination twice, null counting as a
                                    value (the former unique_combination test); failing_rows = the
                                    duplicated keys
      relationships: [{column: c, to: ref('m'), field: f}, ...]
                                    rule <c>_in_<m>: every non-null c is a value of m.f (dbt's
                                    relationships); failing_rows = the rows without one
    Every row check is counted in one pass over the model; each key and relationship is one more
    grouping or join in the same query. Portable SQL (DuckDB and BigQuery). -#}
{% test row_rules(model, rules={}, not_null=[], unique=[], relationships=[]) %}
{%- set row_checks = [] -%}
{%- for column in not_null -%}
  {%- do row_checks.append((column ~ '_not_null', column ~ ' is not null')) -%}
{%- endfor -%}
{%- for name, expression in rules.items() -%}
  {%- do row_checks.append((name, expression)) -%}
{%- endfor -%}
{%- set counts = ["select rule, failing_rows from row_counts"] if row_checks else [] -%}
{%- for key in unique -%}
  {%- set columns = [key] if key is string else key -%}
  {%- do counts.append(
        "select '" ~ (columns | join('_')) ~ "_unique' as rule, count(*) as failing_rows\n"
        ~ "    from (select " ~ (columns | join(', ')) ~ " from " ~ model
        ~ (" where " ~ key ~ " is not null" if key is string else "")
        ~ " group by " ~ (columns | join(', ')) ~ " having count(*) > 1) as duplicated_keys") -%}
{%- endfor -%}
{%- for link in relationships -%}
  {%- do counts.append(
        "select '" ~ link.column ~ "_in_" ~ link.to.identifier ~ "' as rule, count(*) as failing_rows\n"
        ~ "    from " ~ model ~ " as child left join " ~ link.to ~ " as parent"
        ~ " on child." ~ link.column ~ " = parent." ~ link.field ~ "\n"
        ~ "    where child." ~ link.column ~ " is not null and parent." ~ link.field ~ " is null") -%}
{%- endfor %}
with
{%- if row_checks %}
-- every row check counted in one pass: the rows where its expression is not true
row_checks as (
    select
    {%- for name, expression in row_checks %}
        count(case when ({{ expression }}) then null else 1 end) as rule_{{ loop.index }}{{ ',' if not loop.last }}
    {%- endfor %}
    from {{ model }}
),
-- the one row of counts, one row per check (row_checks read once: BigQuery evaluates a CTE per reference)
row_counts as (
    select rule_names.rule,
           case rule_names.position
           {%- for name, expression in row_checks %}
               when {{ loop.index }} then row_checks.rule_{{ loop.index }}
           {%- endfor %}
           end as failing_rows
    from row_checks
    cross join (
        {%- for name, expression in row_checks %}
        select {{ loop.index }} as position, '{{ name }}' as rule{{ ' union all' if not loop.last }}
        {%- endfor %}
    ) as rule_names
),
{%- endif %}
counts as (
    {{ counts | join('\n    union all\n    ') if counts else "select 'none' as rule, 0 as failing_rows" }}
)
select rule, failing_rows
from counts
where failing_rows > 0

{% endtest %}
