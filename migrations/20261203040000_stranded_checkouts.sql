-- The reconciler looks for `new` orders nothing serves any more (a checkout cut short between
-- writing the order and its first DHMAD call or its place in line) once a pass: few rows, found
-- without reading every order.
CREATE INDEX orders_new_by_age ON orders (updated_at) WHERE status = 'new';
