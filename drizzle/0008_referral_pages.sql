-- A page of referrals (GET /api/profile/referrals/) is read from an index
-- alone (an index-only scan), not one table page per referral, and each
-- referral's JSON is made once, when it is written, not on every page that
-- shows it.
--
-- referral_json depends only on its arguments: its format has no names of
-- months or days (the locale) and its time zone is fixed, so it is declared
-- IMMUTABLE, which a generated column requires. It is then no longer inlined
-- (0004's comment no longer holds), and runs only when a row is written. A
-- later change to it would leave the stored JSON as it was until rows are
-- rewritten: change it with a migration that rewrites them.
ALTER FUNCTION referral_json(text, timestamptz) IMMUTABLE;--> statement-breakpoint
-- Dropped before the table is rewritten by the new column, built again after
-- it with INCLUDE, which Drizzle's index builder cannot say: src/db/schema.ts
-- declares it without.
DROP INDEX "users_referrer_seq_key";--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "as_referral" text GENERATED ALWAYS AS (referral_json(phone_number, activated_at)) STORED;--> statement-breakpoint
-- Each referral's JSON beside its position.
CREATE UNIQUE INDEX "users_referrer_seq_key" ON "users" USING btree ("referrer_id","referral_seq") INCLUDE ("as_referral");--> statement-breakpoint
-- The rewritten table's statistics for the planner. VACUUM, which lets a
-- page be read from the index alone, cannot run in a migration's transaction:
-- docs/operations.md says to run it after upgrading. An empty table (a fresh
-- install) is left unanalyzed: analyzed, the planner would take it for empty
-- until analyzed again, and plan whole scans of it; never analyzed, it
-- assumes a few pages of rows, and plans index lookups.
DO $$ BEGIN
  IF EXISTS (SELECT FROM "users") THEN ANALYZE "users"; END IF;
END $$;
