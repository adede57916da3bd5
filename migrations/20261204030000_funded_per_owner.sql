-- A checkout replaying an Idempotency-Key whose order was paid for is refused, not made again:
-- the lookup of that order by its owner, product and buyer.
CREATE INDEX orders_funded_per_owner ON orders (owner_key, sku, buyer_email)
    WHERE status IN ('paid', 'delivered', 'disputed', 'completed');
