-- How many corrections the buyer has asked of the shop's proof of purchase, as DHMAD's proof
-- events last said (`correctionRounds`; not from the escrow's `proofInfo`, whose keys are
-- UNSTATED). Proof events carry no clock, and the phase alone cannot order a submission against
-- a correction request (each may follow the other): an event counting fewer rounds than this is
-- older than what is stored. Never lowered (`GREATEST`).
ALTER TABLE orders ADD COLUMN proof_correction_rounds INTEGER;
