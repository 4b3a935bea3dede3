ALTER TABLE "audit_log" DROP CONSTRAINT "audit_log_type_known";--> statement-breakpoint
ALTER TABLE "audit_log" DROP CONSTRAINT "audit_log_actor_known";--> statement-breakpoint
ALTER TABLE "audit_log" ADD CONSTRAINT "audit_log_type_known" CHECK (type in ('sign_in', 'sign_in_failed', 'code_sent', 'invite_activated', 'logout', 'logout_all', 'admin_block', 'admin_unblock', 'admin_revoke_tokens', 'admin_grant', 'admin_revoke', 'sms_region_budget_hit'));--> statement-breakpoint
ALTER TABLE "audit_log" ADD CONSTRAINT "audit_log_actor_known" CHECK (actor in ('user', 'cli', 'anonymous', 'system'));