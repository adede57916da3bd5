-- One hosted page opened at a time per order, action and side. DHMAD lets two `accept_pay`
-- sessions of one pending escrow be open together, and a guest can pay on each: two "pay" clicks
-- (or a double-clicked checkout and its retry) must not both open one. An opener claims here
-- before its DHMAD call and lets go once the session is stored; the other waits for that page.
-- A claim whose opener died runs out at `claimed_until`.
CREATE TABLE session_openings (
    order_id      UUID NOT NULL REFERENCES orders (id),
    action        TEXT NOT NULL,
    for_merchant  BOOLEAN NOT NULL,
    claimed_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, action, for_merchant)
);
