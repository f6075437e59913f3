-- Outcome labels and decision scans (store.LabelStore, store.DecisionScanner).
--
-- ScanDecisions pages through decisions in (created_at, id) order, with or without an
-- action: both orders get an index that ends in id, so a page is one index range scan and
-- the next page starts where the last one ended. decisions_created_id serves every query
-- decisions_created served, so it replaces it (one index more on the decision path, not two).
CREATE INDEX decisions_created_id ON decisions (created_at, id);
CREATE INDEX decisions_action_created_id ON decisions (action, created_at, id);
DROP INDEX decisions_created;
-- outcome_labels' primary key (decision_id, label) already serves PutLabels and the
-- per-page label lookups of ScanDecisions.
