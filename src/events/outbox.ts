import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { textArray } from '../db/sql-helpers.js';
import type { Clock } from '../lib/clock.js';

/** A timestamptz as the API writes times: ISO 8601 in UTC with milliseconds, like Date#toISOString. */
export function isoTimeSql(column: string): string {
  return `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** The user fields of SPEC 6 (`id`, `phone_number`, `invite_code`, `joined_at`) of the users row `alias`. */
function userJsonSql(alias: string): string {
  return `jsonb_build_object('id', ${alias}.id, 'phone_number', ${alias}.phone_number,
    'invite_code', ${alias}.invite_code, 'joined_at', ${isoTimeSql(`${alias}.created_at`)})`;
}

/**
 * CTEs to append to a statement that inserts users in a CTE named `created`
 * (returning id, phone_number, invite_code, created_at): one `user.created`
 * event per row, and its deliveries, in the same statement, so that the
 * events commit exactly with the users. `at` and `urls` are the statement's
 * parameters for the time and WEBHOOK_URLS (a text[]).
 */
export function userCreatedCtes(at: string, urls: string): string {
  return `, user_events as (
    insert into events (type, data, created_at)
    select 'user.created', ${userJsonSql('c')}, ${at} from created c
    returning id
  ), user_event_deliveries as (
    insert into webhook_deliveries (event_id, url, next_attempt_at)
    select e.id, u.url, ${at} from user_events e cross join unnest(${urls}) as u(url)
  )`;
}

export type Activation = { refereeId: number; referrerId: number; flags: string[] };

/**
 * Writes events and their deliveries, one per WEBHOOK_URLS entry, inside the
 * caller's transaction. Without WEBHOOK_URLS the events are still written:
 * they are the event log admins and receivers replay from.
 */
export class Outbox {
  constructor(
    readonly webhookUrls: string[],
    private readonly clock: Clock,
  ) {}

  /** `invite.activated` for an activation just written in `tx` (the referee's row holds it). */
  async inviteActivated(tx: Db, activation: Activation): Promise<void> {
    const now = this.clock.now();
    await tx.execute(sql`
      with event as (
        insert into events (type, data, created_at)
        select 'invite.activated', jsonb_build_object(
            'referrer', ${sql.raw(userJsonSql('r'))},
            'referee', ${sql.raw(userJsonSql('e'))},
            'invite_code', r.invite_code,
            'activated_at', ${sql.raw(isoTimeSql('e.activated_at'))},
            'flags', ${JSON.stringify(activation.flags)}::jsonb),
          ${now}
        from users e join users r on r.id = ${activation.referrerId}
        where e.id = ${activation.refereeId}
        returning id
      )
      insert into webhook_deliveries (event_id, url, next_attempt_at)
      select event.id, u.url, ${now} from event cross join unnest(${textArray(this.webhookUrls)}) as u(url)`);
  }
}
