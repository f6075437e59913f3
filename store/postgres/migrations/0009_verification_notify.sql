-- Every new verification session is announced on channel verdict_verification with its
-- user id as payload, delivered when its transaction commits. Each Verdict process keeps
-- the users it has seen without any session (the verification signal of most logins) and
-- forgets a user when told, so that a replica learns of a session another one created
-- (store/postgres/unverified.go). The trigger is in the database, so a session inserted by
-- any writer is announced.
--
-- A payload is at most 8,000 bytes; a user id too long for one (the API takes 256) is
-- announced as '*', which makes every listener forget everyone rather than fail the insert.
CREATE FUNCTION verdict_notify_verification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF octet_length(NEW.user_id) > 7000 THEN
		PERFORM pg_notify('verdict_verification', '*');
	ELSE
		PERFORM pg_notify('verdict_verification', NEW.user_id);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER verifications_notify AFTER INSERT ON verifications
	FOR EACH ROW EXECUTE FUNCTION verdict_notify_verification();
