-- Every way DHMAD sells (docs/dhmad-api.md §2.2–§2.4): standard with a contract, and quick with
-- a purchase-proof gate. A fork adds its own products of any mode as rows here.

-- The contract the buyer signs (standard mode only), and the proof gate (quick mode only).
ALTER TABLE products ADD COLUMN contract_terms TEXT;
ALTER TABLE products ADD COLUMN proof_required BOOLEAN NOT NULL DEFAULT FALSE;
-- Hours after funding for the shop to upload its proof, and for the buyer to review it
-- (DHMAD's bounds: 6–72; NULL = DHMAD's default of 24).
ALTER TABLE products ADD COLUMN proof_upload_hours INTEGER CHECK (proof_upload_hours BETWEEN 6 AND 72);
ALTER TABLE products ADD COLUMN proof_review_hours INTEGER CHECK (proof_review_hours BETWEEN 6 AND 72);
ALTER TABLE products ADD CONSTRAINT products_contract_for_standard
    CHECK ((mode = 'standard') = (contract_terms IS NOT NULL));
ALTER TABLE products ADD CONSTRAINT products_proof_for_quick
    CHECK (NOT proof_required OR mode = 'quick');
ALTER TABLE products DROP CONSTRAINT products_quick_needs_delivery_days;
ALTER TABLE products ADD CONSTRAINT products_shipped_needs_delivery_days
    CHECK (mode = 'instant' OR estimated_delivery_days IS NOT NULL);

INSERT INTO products (sku, name, description, price, currency, mode, estimated_delivery_days,
                      contract_terms, proof_required, proof_upload_hours, proof_review_hours) VALUES
    ('logo-design', 'Logo design (made to order)',
     'A logo drawn for you by a Tunis studio: three proposals, two rounds of changes. You and the studio sign the terms before paying.',
     300.000, 'TND', 'standard', 14,
     'The studio delivers three logo proposals within 14 days and two rounds of changes on the one chosen, as vector files. The buyer pays through DHMAD escrow; the payment is released when the buyer confirms delivery.',
     FALSE, NULL, NULL),
    ('pottery-nabeul', 'Nabeul pottery plate (bought for you)',
     'A hand-painted plate the shop buys for you in Nabeul. The shop shows you the receipt before shipping; you can ask for a better proof.',
     60.000, 'TND', 'quick', 4, NULL, TRUE, 24, 24);

-- What DHMAD says of the escrow's contract and proof gate, kept from its snapshots.
ALTER TABLE orders ADD COLUMN contract_buyer_signed BOOLEAN;
ALTER TABLE orders ADD COLUMN contract_seller_signed BOOLEAN;
-- DHMAD's proofInfo.phase exactly (waiting_seller_proof, submitted_waiting_buyer_review, …).
ALTER TABLE orders ADD COLUMN proof_phase TEXT;
ALTER TABLE orders ADD COLUMN proof_upload_deadline TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN proof_review_deadline TIMESTAMPTZ;
-- The order was sold with DHMAD's proof gate (from its product): shipping waits for the proof
-- to be accepted.
ALTER TABLE orders ADD COLUMN proof_required BOOLEAN NOT NULL DEFAULT FALSE;
