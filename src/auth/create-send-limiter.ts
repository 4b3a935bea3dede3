import type { AuditLog } from '../audit/audit-log.js';
import type { Deps } from '../deps.js';
import type { SendLimiter } from './send-limiter.js';
import { type RegionBudgetHit, StoreSendLimiter } from './store-send-limiter.js';

/** Once a minute per region and instance at most: an attack on one country would flood the log otherwise. */
const REGION_LOG_INTERVAL_MS = 60_000;

/** The budgets' window: one audit entry per region per clock hour. */
const AUDIT_WINDOW_SECONDS = 3600;

/**
 * What happens when a region's SMS budget refuses a message: the one place
 * where that is reported. Called for every refusal, so each report is
 * throttled: the warning to once a minute per region and instance, the audit
 * entry (`sms_region_budget_hit`) to once per region and hour for all
 * instances together. A flood of refusals is not a flood of writes: a marker
 * in the shared store claims the hour's entry, and each instance remembers
 * the hours it has seen claimed, so the store is asked once per region and
 * hour per instance.
 */
export function regionBudgetHit({
  logger,
  clock,
  store,
  audit,
}: Pick<Deps, 'logger' | 'clock' | 'store'> & {
  audit: Pick<AuditLog, 'record'>;
}): RegionBudgetHit {
  const lastLoggedMs = new Map<string, number>();
  const auditedHour = new Map<string, number>();
  return async (region, limit) => {
    const nowMs = clock.now().getTime();
    const last = lastLoggedMs.get(region);
    if (last === undefined || nowMs - last >= REGION_LOG_INTERVAL_MS) {
      lastLoggedMs.set(region, nowMs);
      logger.warn(
        { region, limit },
        'SMS budget of a region is spent (SMS_MAX_PER_REGION_PER_HOUR): its numbers get 429',
      );
    }
    const hour = Math.floor(nowMs / (AUDIT_WINDOW_SECONDS * 1000));
    if (auditedHour.get(region) === hour) return;
    const marker = `audit:region-hit:${region}:${hour}`;
    let claimed: boolean;
    try {
      claimed = await store.setIfAbsent(marker, '1', AUDIT_WINDOW_SECONDS);
    } catch (error) {
      // The refusal stands either way; the next one tries again.
      logger.warn({ err: error, region }, 'region budget audit entry not claimed');
      return;
    }
    auditedHour.set(region, hour);
    if (!claimed) return;
    const written = await audit.record({
      type: 'sms_region_budget_hit',
      actor: 'system',
      details: { region, limit },
    });
    if (!written) {
      // Not written (the database is down): the claim is given back, so that
      // a later refusal, here or on another instance, writes the hour's entry.
      auditedHour.delete(region);
      await store.delete(marker).catch(() => {});
    }
  };
}

/** The send limits configured for this deployment. */
export function createSendLimiter(
  deps: Pick<Deps, 'store' | 'clock' | 'config' | 'logger' | 'audit'>,
): SendLimiter {
  const { store, clock, config } = deps;
  return new StoreSendLimiter(
    store,
    clock,
    {
      resendCooldownSeconds: config.OTP_RESEND_COOLDOWN_SECONDS,
      maxPerPhonePerHour: config.OTP_MAX_PER_PHONE_PER_HOUR,
      maxPerIpPerHour: config.OTP_MAX_PER_IP_PER_HOUR,
      smsMaxPerHour: config.SMS_MAX_PER_HOUR,
      smsPerRegionPerHour: config.smsPerRegionPerHour,
      maxVerifyPerIpPerHour: config.OTP_MAX_VERIFY_PER_IP_PER_HOUR,
    },
    regionBudgetHit(deps),
  );
}
