import { sql } from 'drizzle-orm';
import { clientKey } from '../auth/store-send-limiter.js';
import type { Db } from '../db/client.js';
import type { FraudFlag } from '../db/schema.js';
import { rowsOf } from '../db/sql-helpers.js';

export type { FraudFlag } from '../db/schema.js';

/**
 * Fraud signals (SPEC 6): the client IP and device id of a user's first
 * sign-in are kept on the user, and an activation is flagged with each reason
 * that holds. A flag is a signal for a human to look at, never a refusal:
 * people behind one NAT, a carrier-grade NAT or an office proxy share an IP,
 * and a family shares a tablet.
 */

/** The part of an address that names one client: the address itself, or an IPv6 /64. */
export function ipNetwork(ip: string): string {
  return clientKey(ip);
}

export type FraudSettings = {
  /** More activations than this for one referrer within an hour flag the next ones; 0: off. */
  velocityPerHour: number;
};

export type ActivationFacts = { refereeId: number; referrerId: number; at: Date };

const HOUR_MS = 3_600_000;

type SignalsRow = {
  referee_ip: string | null;
  referee_device: string | null;
  referrer_ip: string | null;
  referrer_device: string | null;
  recent: number | string;
};

export class FraudSignals {
  constructor(private readonly settings: FraudSettings) {}

  /**
   * The flags of an activation, computed in its transaction before the
   * referee's row is updated (the referee is not yet among the referrer's
   * referrals). The caller holds the lock on the referrer's row, so two
   * activations of one referrer are counted one after the other: the velocity
   * count is exact, not a guess from a cache.
   */
  async flagActivation(tx: Db, activation: ActivationFacts): Promise<FraudFlag[]> {
    const { refereeId, referrerId, at } = activation;
    const limit = this.settings.velocityPerHour;
    const since = new Date(at.getTime() - HOUR_MS).toISOString();
    // At most `limit` earlier activations are counted: only "as many as the limit" matters.
    const rows = rowsOf<SignalsRow>(
      await tx.execute(sql`
        select e.signup_ip as referee_ip, e.signup_device_id as referee_device,
          r.signup_ip as referrer_ip, r.signup_device_id as referrer_device,
          (select count(*)::int from (
            select 1 from users
            where referrer_id = ${referrerId} and activated_at > ${since}
            limit ${limit}) recent) as recent
        from users e, users r
        where e.id = ${refereeId} and r.id = ${referrerId}`),
    );
    const row = rows[0];
    if (!row) return [];
    const flags: FraudFlag[] = [];
    if (
      row.referee_ip !== null &&
      row.referrer_ip !== null &&
      ipNetwork(row.referee_ip) === ipNetwork(row.referrer_ip)
    ) {
      flags.push('same_ip');
    }
    if (row.referee_device !== null && row.referee_device === row.referrer_device) {
      flags.push('same_device');
    }
    // This activation is one more than those counted: more than the limit once `limit` came before.
    if (limit > 0 && Number(row.recent) >= limit) flags.push('velocity');
    return flags;
  }
}

/** A flag as admins see it: the reason, what it means, and what it was raised on. */
export type FlagDetail = {
  reason: FraudFlag;
  description: string;
  /** same_ip: the sign-up IPs of the referee and the referrer, and the network they share. */
  ip?: string;
  referrer_ip?: string;
  network?: string;
  /** same_device: the device id both signed up with. */
  device_id?: string;
  /** velocity: the referrer's activations in the hour up to this one, this one included. */
  activations_in_hour?: number;
};

export const flagDescriptions: Record<FraudFlag, string> = {
  same_ip:
    'Signed up from the same IP address as the referrer (IPv6: the same /64 network). Also true of people behind one NAT, carrier-grade NAT or office proxy.',
  same_device: 'Signed up with the same device id as the referrer.',
  velocity:
    'The referrer gained more than FRAUD_VELOCITY_PER_HOUR activations in the hour up to this one.',
};

type DetailRow = {
  fraud_flags: FraudFlag[] | string | null;
  signup_ip: string | null;
  signup_device_id: string | null;
  referrer_ip: string | null;
  activations_in_hour: number | string | null;
};

/** PGlite and node-postgres both parse text[]; a literal `{a,b}` is read here just in case. */
function parseFlags(value: FraudFlag[] | string | null): FraudFlag[] {
  if (value === null) return [];
  if (Array.isArray(value)) return value;
  const inner = value.replace(/^\{|\}$/g, '');
  return inner === '' ? [] : (inner.split(',') as FraudFlag[]);
}

/** The flags of a user's activation with what each was raised on ([]: none, or not activated). */
export async function flagDetails(db: Db, userId: number): Promise<FlagDetail[]> {
  const rows = rowsOf<DetailRow>(
    await db.execute(sql`
      select e.fraud_flags, e.signup_ip, e.signup_device_id, r.signup_ip as referrer_ip,
        case when 'velocity' = any(e.fraud_flags) then (
          select count(*)::int from users
          where referrer_id = e.referrer_id and activated_at > e.activated_at - interval '1 hour'
            and activated_at <= e.activated_at
        ) end as activations_in_hour
      from users e left join users r on r.id = e.referrer_id
      where e.id = ${userId}`),
  );
  const row = rows[0];
  if (!row) return [];
  return parseFlags(row.fraud_flags).map((reason): FlagDetail => {
    const description = flagDescriptions[reason];
    if (reason === 'same_ip') {
      return {
        reason,
        description,
        ...(row.signup_ip === null ? {} : { ip: row.signup_ip, network: ipNetwork(row.signup_ip) }),
        ...(row.referrer_ip === null ? {} : { referrer_ip: row.referrer_ip }),
      };
    }
    if (reason === 'same_device') {
      const deviceId = row.signup_device_id;
      return { reason, description, ...(deviceId === null ? {} : { device_id: deviceId }) };
    }
    return { reason, description, activations_in_hour: Number(row.activations_in_hour ?? 0) };
  });
}
