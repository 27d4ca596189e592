{#- A stable key for one distinct invoice line: a hash of its eight business columns.
    Identical lines from two sources get the same key, so the fact keeps one. -#}
{% macro line_key(columns) -%}
  {{ return(adapter.dispatch('line_key', 'retail')(columns)) }}
{%- endmacro %}

{% macro default__line_key(columns) -%}
  md5(concat_ws('|'{% for c in columns %}, coalesce(cast({{ c }} as varchar), '<null>'){% endfor %}))
{%- endmacro %}

{% macro bigquery__line_key(columns) -%}
  to_hex(md5(concat({% for c in columns %}{% if not loop.first %}, '|', {% endif %}coalesce(cast({{ c }} as string), '<null>'){% endfor %})))
{%- endmacro %}
