-- Retention (store.Retention): the indexes its scans by age use. A retention run reads
-- each class oldest first, in batches; without these every batch would scan its table.
-- Nothing here touches audit_events: the audit log holds hashes only and is never deleted.
CREATE INDEX verifications_created ON verifications (created_at);
CREATE INDEX raw_payloads_received ON raw_payloads (received_at);
CREATE INDEX outcome_labels_created ON outcome_labels (created_at);
CREATE INDEX reviews_decided ON reviews (decided_at) WHERE decided_at IS NOT NULL;
