-- verdict_expect raises SQLSTATE VD001 with msg unless ok is true. WriteDecisions' one
-- round-trip commit checks its assumptions with it (the audit head is where this process
-- last saw it; every idempotency and subject key is new): any that does not hold aborts the
-- whole implicit transaction, and the store writes the batch again the locking way.
CREATE FUNCTION verdict_expect(ok boolean, msg text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF ok IS NOT TRUE THEN
		RAISE EXCEPTION '%', msg USING ERRCODE = 'VD001';
	END IF;
END
$$;
