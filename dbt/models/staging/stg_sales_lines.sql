with source as (

    select * from {{ source('raw', 'sales_lines') }}

),

renamed as (

    select
        ---------- ids
        {{ line_key(['invoice_no', 'stock_code', 'description', 'quantity', 'invoice_datetime',
                     'unit_price', 'customer_id', 'country']) }} as line_id,
        invoice_no,
        stock_code,
        customer_id,

        ---------- text
        description,
        country,
        line_type,

        ---------- numerics
        quantity,
        unit_price,
        quantity * unit_price as amount,

        ---------- timestamps
        invoice_datetime,
        invoice_date,
        invoice_month,

        ---------- lineage
        batch_id,
        source_uri,
        source_generation,
        source_sheet,
        source_row

    from source

)

select * from renamed
