ALTER TABLE "users" ADD COLUMN "signup_ip" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "signup_device_id" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "fraud_flags" text[];--> statement-breakpoint
CREATE INDEX "users_referrer_activated_at_idx" ON "users" USING btree ("referrer_id","activated_at") WHERE "users"."referrer_id" is not null;