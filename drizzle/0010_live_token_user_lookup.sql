-- live_token_user as a lookup of one token: the LIMIT keeps the inlined body
-- a subquery of its own, so a statement that checks many tokens at once (a
-- turn's uncached profiles or pages, each row of an unnest joined laterally
-- to the function) looks each up by api_tokens_token_hash_key. Without it the
-- planner flattens the body into the caller and may hash all of api_tokens
-- against the hashes, which a plan made on a small table chooses and then
-- keeps (src/db/plan-once.ts). A token's hash is unique: one row or none, as
-- before; the rule itself (0005) is unchanged.
CREATE OR REPLACE FUNCTION live_token_user(token_sha256 bytea, checked_at timestamptz)
RETURNS TABLE (id bigint, phone_number text, is_staff boolean, expires_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT u.id, u.phone_number, u.is_staff, t.expires_at
  FROM api_tokens t JOIN users u ON u.id = t.user_id
  WHERE t.token_hash = token_sha256
    AND (t.expires_at IS NULL OR t.expires_at > checked_at)
    AND NOT u.is_blocked
  LIMIT 1
$$;
