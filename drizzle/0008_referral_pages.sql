-- A page of referrals (GET /api/profile/referrals/) is read from an index
-- alone (an index-only scan), not one table page per referral, and each
-- referral's JSON is made once, when it is written, not on every page that
-- shows it.
--
-- referral_json depends only on its arguments: its format has no names of
-- months or days (the locale) and its time zone is fixed, so it is declared
-- IMMUTABLE, which a generated column requires.
ALTER FUNCTION referral_json(text, timestamptz) IMMUTABLE;--> statement-breakpoint
-- Dropped before the table is rewritten by the new column, built again after
-- it with INCLUDE, which Drizzle's index builder cannot say: src/db/schema.ts
-- declares it without.
DROP INDEX "users_referrer_seq_key";--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "as_referral" text GENERATED ALWAYS AS (referral_json(phone_number, activated_at)) STORED;--> statement-breakpoint
-- Each referral's JSON beside its position.
CREATE UNIQUE INDEX "users_referrer_seq_key" ON "users" USING btree ("referrer_id","referral_seq") INCLUDE ("as_referral");
