-- user_totals is kept by these triggers, so every way rows reach users counts:
-- sign-ups, a seed script, SQL by hand. Each connection adds to its own shard
-- (its backend pid modulo 64), so concurrent sign-ups rarely wait on one row.
-- ENABLE ALWAYS: they run under session_replication_role = replica too, which
-- bulk loads (scripts/seed-data.ts) set to skip the foreign key triggers.
CREATE FUNCTION user_totals_add(added_users bigint, added_activations bigint) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO user_totals AS t (shard, users, activations)
  VALUES (pg_backend_pid() % 64, added_users, added_activations)
  ON CONFLICT (shard) DO UPDATE
    SET users = t.users + excluded.users, activations = t.activations + excluded.activations
$$;
--> statement-breakpoint
-- Once per statement, not per row: a batch of sign-ups updates one row once,
-- and a sign-in of a known number (an insert of no rows) writes nothing.
CREATE FUNCTION user_totals_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  added bigint;
  referred bigint;
BEGIN
  SELECT count(*), count(referrer_id) INTO added, referred FROM inserted_users;
  IF added > 0 THEN
    PERFORM user_totals_add(added, referred);
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION user_totals_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  removed bigint;
  referred bigint;
BEGIN
  SELECT count(*), count(referrer_id) INTO removed, referred FROM deleted_users;
  IF removed > 0 THEN
    PERFORM user_totals_add(-removed, -referred);
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION user_totals_after_referrer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM user_totals_add(0, CASE WHEN NEW.referrer_id IS NULL THEN -1 ELSE 1 END);
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION user_totals_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM user_totals;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER users_totals_insert AFTER INSERT ON users
  REFERENCING NEW TABLE AS inserted_users
  FOR EACH STATEMENT EXECUTE FUNCTION user_totals_after_insert();
--> statement-breakpoint
CREATE TRIGGER users_totals_delete AFTER DELETE ON users
  REFERENCING OLD TABLE AS deleted_users
  FOR EACH STATEMENT EXECUTE FUNCTION user_totals_after_delete();
--> statement-breakpoint
-- Per row, but only for the rows whose referrer changes: an activation.
CREATE TRIGGER users_totals_referrer AFTER UPDATE OF referrer_id ON users
  FOR EACH ROW WHEN ((OLD.referrer_id IS NULL) <> (NEW.referrer_id IS NULL))
  EXECUTE FUNCTION user_totals_after_referrer_change();
--> statement-breakpoint
CREATE TRIGGER users_totals_truncate AFTER TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION user_totals_after_truncate();
--> statement-breakpoint
ALTER TABLE users ENABLE ALWAYS TRIGGER users_totals_insert;
--> statement-breakpoint
ALTER TABLE users ENABLE ALWAYS TRIGGER users_totals_delete;
--> statement-breakpoint
ALTER TABLE users ENABLE ALWAYS TRIGGER users_totals_referrer;
--> statement-breakpoint
ALTER TABLE users ENABLE ALWAYS TRIGGER users_totals_truncate;
--> statement-breakpoint
-- The users already there. CREATE TRIGGER locked users against writes until
-- this migration commits, so none is counted twice or missed.
INSERT INTO user_totals (shard, users, activations)
SELECT 0, count(*), count(referrer_id) FROM users;
