-- Stalled payments, for the operators' bulk re-drive (a partial index: normally almost empty).
CREATE INDEX payments_stalled ON payments (id) WHERE stalled = 1;
