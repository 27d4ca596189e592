with source as (

    select * from {{ source('raw', 'batches') }}

),

renamed as (

    select
        ---------- ids
        batch_id,
        source_uri,
        source_generation,

        ---------- state
        state,
        error,

        ---------- row counts
        rows_read,
        rows_loaded,
        rows_quarantined,
        rows_duplicate,

        ---------- timestamps
        ingested_at

    from source

)

select * from renamed
