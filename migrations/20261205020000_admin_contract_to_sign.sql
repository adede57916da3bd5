-- The back office's "contract to sign" filter (`NeedsAction::ContractToSign` in
-- `src/db/admin_views.rs`, which writes the predicate this index repeats): standard orders
-- DHMAD could not auto-sign for the merchant, waiting for the merchant's signature.
CREATE INDEX orders_admin_sign ON orders (created_at, id)
    WHERE mode = 'standard' AND status = 'awaiting_payment' AND contract_seller_signed IS NOT TRUE;
