ALTER TABLE "users" ADD COLUMN "first_referrals" text;
--> statement-breakpoint
-- A referral as the API writes it, as JSON text: activated_at as JavaScript's
-- Date.prototype.toISOString writes it (UTC, milliseconds cut). Made here, so
-- that no referral is parsed into a Date and formatted again by the service.
-- Text, not json_build_object: about a third of the cost per referral. STABLE
-- (to_char is): the planner inlines it into the calling statement.
CREATE FUNCTION referral_json(phone_number text, activated_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT '{"phone_number":' || to_json(phone_number)::text || ',"activated_at":"'
    || to_char(activated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"}'
$$;
--> statement-breakpoint
-- The first 100 referrals of the users who have them (see users.first_referrals
-- in src/db/schema.ts; the service writes them at the 100th activation).
UPDATE users u SET first_referrals = (
  SELECT '[' || string_agg(referral_json(x.phone_number, x.activated_at), ',' ORDER BY x.referral_seq) || ']'
  FROM (
    SELECT phone_number, activated_at, referral_seq FROM users
    WHERE referrer_id = u.id ORDER BY referral_seq LIMIT 100
  ) x
)
WHERE u.referrals_count >= 100;
