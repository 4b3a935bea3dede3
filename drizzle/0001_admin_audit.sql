CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"type" text NOT NULL,
	"actor" text NOT NULL,
	"actor_id" bigint,
	"user_id" bigint,
	"ip" text,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	CONSTRAINT "audit_log_type_known" CHECK (type in ('sign_in', 'sign_in_failed', 'code_sent', 'invite_activated', 'logout', 'logout_all', 'admin_block', 'admin_unblock', 'admin_revoke_tokens', 'admin_grant', 'admin_revoke')),
	CONSTRAINT "audit_log_actor_known" CHECK (actor in ('user', 'cli', 'anonymous'))
);
--> statement-breakpoint
CREATE TABLE "user_totals" (
	"shard" integer PRIMARY KEY NOT NULL,
	"users" bigint DEFAULT 0 NOT NULL,
	"activations" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX "audit_log_user_idx" ON "audit_log" USING btree ("user_id","id") WHERE "audit_log"."user_id" is not null;--> statement-breakpoint
CREATE INDEX "audit_log_type_idx" ON "audit_log" USING btree ("type","id");--> statement-breakpoint
CREATE INDEX "audit_log_type_at_idx" ON "audit_log" USING btree ("type","at");--> statement-breakpoint
CREATE INDEX "users_created_at_idx" ON "users" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "users_phone_reversed_idx" ON "users" USING btree (reverse("phone_number") text_pattern_ops);--> statement-breakpoint
CREATE INDEX "users_activated_at_idx" ON "users" USING btree ("activated_at") WHERE "users"."activated_at" is not null;--> statement-breakpoint
CREATE INDEX "users_top_referrers_idx" ON "users" USING btree ("referrals_count" DESC NULLS FIRST,"id") WHERE "users"."referrals_count" > 0;