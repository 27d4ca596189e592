-- Nothing is lost silently: for every ingested batch, the rows of mart_data_quality add up to the
-- rows read from the source.
select batch_id, max(rows_read) as rows_read, sum(row_count) as accounted
from {{ ref('mart_data_quality') }}
where state = 'ingested'
group by batch_id
having sum(row_count) <> max(rows_read)
