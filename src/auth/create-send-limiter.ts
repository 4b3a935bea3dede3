import type { Deps } from '../deps.js';
import type { SendLimiter } from './send-limiter.js';
import { type RegionBudgetHit, StoreSendLimiter } from './store-send-limiter.js';

/** Once a minute per region and instance at most: an attack on one country would flood the log otherwise. */
const REGION_LOG_INTERVAL_MS = 60_000;

/**
 * What happens when a region's SMS budget refuses a message: the one place
 * where that is reported (a warning now; metrics and the audit log hook in
 * here). Called for every refusal; only the log line is throttled.
 */
export function regionBudgetHit({
  logger,
  clock,
}: Pick<Deps, 'logger' | 'clock'>): RegionBudgetHit {
  const lastLoggedMs = new Map<string, number>();
  return (region, limit) => {
    const nowMs = clock.now().getTime();
    const last = lastLoggedMs.get(region);
    if (last !== undefined && nowMs - last < REGION_LOG_INTERVAL_MS) return;
    lastLoggedMs.set(region, nowMs);
    logger.warn(
      { region, limit },
      'SMS budget of a region is spent (SMS_MAX_PER_REGION_PER_HOUR): its numbers get 429',
    );
  };
}

/** The send limits configured for this deployment. */
export function createSendLimiter(
  deps: Pick<Deps, 'store' | 'clock' | 'config' | 'logger'>,
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
