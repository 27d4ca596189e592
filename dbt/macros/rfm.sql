{#- RFM scoring and segments (rules in the `rfm_rules` docs block in models/docs.md). -#}

{#- 1..5: 5 when the value is at most thresholds[0], 4 at most thresholds[1], ... (lower is better) -#}
{% macro score_lower_is_better(expression, thresholds) -%}
    case
    {%- for limit in thresholds %}
        when {{ expression }} <= {{ limit }} then {{ 5 - loop.index0 }}
    {%- endfor %}
        else 1
    end
{%- endmacro %}

{#- 1..5: 1 when the value is below thresholds[0], 2 below thresholds[1], ... (higher is better) -#}
{% macro score_higher_is_better(expression, thresholds) -%}
    case
    {%- for limit in thresholds %}
        when {{ expression }} < {{ limit }} then {{ loop.index }}
    {%- endfor %}
        else 5
    end
{%- endmacro %}

{#- named segment from the three scores; first matching rule wins -#}
{% macro rfm_segment(r, f, m) -%}
    case
        when {{ r }} >= 4 and {{ f }} >= 4 and {{ m }} >= 4 then 'Champions'
        when {{ r }} >= 3 and {{ f }} >= 4 then 'Loyal'
        when {{ r }} >= 4 and {{ f }} = 1 then 'New'
        when {{ r }} >= 4 then 'Potential loyalist'
        when {{ r }} <= 2 and {{ f }} >= 3 then 'At risk'
        when {{ r }} = 2 then 'Hibernating'
        when {{ r }} = 1 then 'Lost'
        else 'Needs attention'
    end
{%- endmacro %}
