-- The mailbox an address delivers to, for the e-mail flood cap (`db::outbox::sent_to_address`):
-- a sub-address (RFC 5233, `victim+1@example.tn`) reaches the same inbox as `victim@example.tn`,
-- so the cap counts them together. Addresses are stored lower-cased and never with a quoted
-- local part (`email::normalise`), so the first `+…@` is in the local part.
CREATE FUNCTION mailbox_of(address text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT regexp_replace(address, '\+[^@]*@', '@') $$;

CREATE INDEX orders_mailbox ON orders (mailbox_of(buyer_email));
