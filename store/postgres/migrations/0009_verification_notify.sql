-- Every new verification session is announced on channel verdict_verification with its
-- user id as payload, delivered when its transaction commits. Each Verdict process keeps
-- the users it has seen without any session (the verification signal of most logins) and
-- forgets a user when told, so that a replica learns of a session another one created
-- (store/postgres/unverified.go). The trigger is in the database, so a session inserted by
-- any writer is announced.
CREATE FUNCTION verdict_notify_verification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('verdict_verification', NEW.user_id);
	RETURN NULL;
END
$$;

CREATE TRIGGER verifications_notify AFTER INSERT ON verifications
	FOR EACH ROW EXECUTE FUNCTION verdict_notify_verification();
