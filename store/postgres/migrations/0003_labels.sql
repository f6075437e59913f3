-- Outcome labels and decision scans (store.LabelStore, store.DecisionScanner).
--
-- ScanDecisions pages through decisions in (created_at, id) order, with or without an
-- action. id is compared bytewise (COLLATE "C"), as the embedded store does, whatever the
-- database's locale; the indexes carry that collation so a keyset page is one index range
-- scan. decisions_created_id serves every query decisions_created served, so it replaces it
-- (one index more on the decision path, not two). New indexes need no grants: verdict_app's
-- privileges are on tables (grants.sql).
CREATE INDEX decisions_created_id ON decisions (created_at, id COLLATE "C");
CREATE INDEX decisions_action_created_id ON decisions (action, created_at, id COLLATE "C");
DROP INDEX decisions_created;
-- outcome_labels' primary key (decision_id, label) already serves PutLabels and the
-- per-page label lookups of ScanDecisions.
