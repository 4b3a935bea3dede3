-- The token rule of SPEC section 4, in one place: the user behind a token (by
-- its SHA-256), if the token has not expired at `checked_at` and the user is
-- not blocked. A revoked token is a deleted row, so it is not found. Every
-- token check reads through this function: SessionService's own check and the
-- reads that check the token in the same statement as they read (the profile,
-- a referrals page). LANGUAGE sql, STABLE and a single SELECT: the planner
-- inlines it into the calling statement, so it costs what the join written out
-- would (index scans of api_tokens_token_hash_key and users_pkey).
CREATE FUNCTION live_token_user(token_sha256 bytea, checked_at timestamptz)
RETURNS TABLE (id bigint, phone_number text, is_staff boolean, expires_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT u.id, u.phone_number, u.is_staff, t.expires_at
  FROM api_tokens t JOIN users u ON u.id = t.user_id
  WHERE t.token_hash = token_sha256
    AND (t.expires_at IS NULL OR t.expires_at > checked_at)
    AND NOT u.is_blocked
$$;
