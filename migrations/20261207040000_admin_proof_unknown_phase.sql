-- "Proof to upload" also lists a paid proof order whose phase the shop never learned
-- (`Order::allows(Action::SubmitProof)`): its partial index follows the filter's predicate.
DROP INDEX orders_admin_proof;
CREATE INDEX orders_admin_proof ON orders (created_at, id)
    WHERE status = 'paid'
      AND (proof_phase IN ('waiting_seller_proof', 'correction_requested')
           OR (proof_phase IS NULL AND proof_required));
