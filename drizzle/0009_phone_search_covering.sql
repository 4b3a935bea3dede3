-- The admin search by last digits counts and orders its matches (about 100
-- for 4 digits at a million users) from the index alone (an index-only scan),
-- and reads from the table only the page's users: not one table page per
-- match. INCLUDE, which Drizzle's index builder cannot say: src/db/schema.ts
-- declares the index without. phone_number is there because an index-only
-- scan needs the columns an expression is made of.
--
-- The new index is built beside the old one, which blocks writes to users
-- (sign-ups, activations) but not reads, and only then does the old one go:
-- dropping it takes a lock that stops reads too, held to the end of the
-- migration's transaction, so it comes last.
CREATE INDEX "users_phone_reversed_covering_idx" ON "users" USING btree (reverse("phone_number") text_pattern_ops) INCLUDE ("created_at", "id", "phone_number");--> statement-breakpoint
DROP INDEX "users_phone_reversed_idx";--> statement-breakpoint
ALTER INDEX "users_phone_reversed_covering_idx" RENAME TO "users_phone_reversed_idx";
