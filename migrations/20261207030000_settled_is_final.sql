-- What the state machine (`OrderStatus::can_become`) and the snapshot rules promise, held by
-- the schema too, so a write that slipped past them fails loudly instead of undoing a
-- settlement or swapping the code a buyer paid for: a completed or cancelled order keeps its
-- status, and a digital code, once issued, is never replaced or taken away.
-- A trigger and its function only: no table scan, no lock held beyond the catalog's.
CREATE FUNCTION orders_settled_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'cancelled') AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'order % is %: settled is final', OLD.id, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.digital_code IS NOT NULL AND NEW.digital_code IS DISTINCT FROM OLD.digital_code THEN
        RAISE EXCEPTION 'order % has its digital code: it is never replaced', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER orders_settled_is_final BEFORE UPDATE OF status, digital_code ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_settled_is_final();
