with source as (

    select * from {{ source('raw', 'quarantine') }}

),

renamed as (

    select
        ---------- ids
        batch_id,
        source_uri,
        source_sheet,
        source_row,

        ---------- why
        reason,
        detail,

        ---------- the cells as read
        raw_invoice_no,
        raw_stock_code,
        raw_description,
        raw_quantity,
        raw_invoice_date,
        raw_unit_price,
        raw_customer_id,
        raw_country

    from source

)

select * from renamed
