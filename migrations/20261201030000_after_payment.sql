-- After the money is held: guest payments under review, cancellations, disputes, delivery
-- rejections (see docs/ARCHITECTURE.md, "The order's state machine").

CREATE TYPE cancellation_state AS ENUM ('requested', 'rejected', 'accepted');

-- A guest paid out of band and uploaded a proof; DHMAD's admin has not decided yet. While set,
-- the buyer is offered no new payment (a second one would take the money twice).
ALTER TABLE orders ADD COLUMN payment_review_since TIMESTAMPTZ;
-- The buyer's cancellation request after payment, as DHMAD's events tell it.
ALTER TABLE orders ADD COLUMN cancellation cancellation_state;
ALTER TABLE orders ADD COLUMN cancellation_reason TEXT;
-- Why the buyer rejected the last delivery (the order is back to paid; the merchant ships again).
ALTER TABLE orders ADD COLUMN delivery_rejection_reason TEXT;

-- Sessions opened for the merchant (DHMAD_SELLER_EMAIL) rather than the buyer: the callback
-- sends the merchant back to the back office.
ALTER TABLE checkout_sessions ADD COLUMN for_merchant BOOLEAN NOT NULL DEFAULT FALSE;

-- What the buyer reads of a timeline entry; NULL = back office only. `detail` keeps the
-- internal text (event types, DHMAD's raw statuses, errors).
ALTER TABLE order_events ADD COLUMN public TEXT;
