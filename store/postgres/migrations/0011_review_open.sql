-- The review queue's decisions are those with outcome review that no reviewer has decided.
-- The partial index of 0002 held every review decision ever made, so the queue walked past
-- all the decided ones to reach the open ones: with a year of history (300,000 decided),
-- every page load, claim and decision of a reviewer took seconds. A decision now records
-- when its review was closed, and the queue's index holds the open ones only.
ALTER TABLE decisions ADD COLUMN review_closed_at timestamptz;
UPDATE decisions d SET review_closed_at = r.decided_at FROM reviews r
	WHERE r.kind = 'decision' AND r.item_id = d.id AND r.decided_at IS NOT NULL AND d.outcome = 'review';
DROP INDEX decisions_review;
CREATE INDEX decisions_review_open ON decisions (created_at) WHERE outcome = 'review' AND review_closed_at IS NULL;
