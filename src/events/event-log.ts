import type { Database } from '../db/client.js';
import { isoTimeSql } from './outbox.js';

export type DeliveryView = {
  url: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  last_error: string | null;
  last_attempt_at: string | null;
  /** Pending: when the next attempt is due (while one is in flight, when its lease runs out). */
  next_attempt_at: string | null;
  delivered_at: string | null;
};

export type EventView = {
  id: number;
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
  deliveries: DeliveryView[];
};

export type EventPage = { results: EventView[]; next_after: number; has_more: boolean };

type Row = {
  id: string | number;
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
  deliveries: DeliveryView[];
};

/** The event log (SPEC 6), for admins and for receivers that missed deliveries. */
export class EventLog {
  constructor(private readonly database: Database) {}

  /** Events after `afterId`, in id order, each with its deliveries. */
  async list(afterId: number, limit: number): Promise<EventPage> {
    const rows = await this.database.query<Row>(
      'event_log',
      `select e.id, e.type, ${isoTimeSql('e.created_at')} as timestamp, e.data, delivered.deliveries
       from (select * from events where id > $1 order by id limit $2) e
       cross join lateral (
         select coalesce(jsonb_agg(jsonb_build_object(
           'url', d.url, 'state', d.state, 'attempts', d.attempts, 'last_error', d.last_error,
           'last_attempt_at', ${isoTimeSql('d.last_attempt_at')},
           'next_attempt_at', case when d.state = 'pending' then ${isoTimeSql('d.next_attempt_at')} end,
           'delivered_at', ${isoTimeSql('d.delivered_at')})
           order by d.id), '[]'::jsonb) as deliveries
         from webhook_deliveries d where d.event_id = e.id
       ) delivered
       order by e.id`,
      [afterId, limit + 1],
    );
    const page = rows.slice(0, limit).map((row) => ({ ...row, id: Number(row.id) }));
    return {
      results: page,
      next_after: page.at(-1)?.id ?? afterId,
      has_more: rows.length > limit,
    };
  }

  /** Events written but not yet delivered to every webhook (the outbox_pending gauge). */
  async pendingCount(): Promise<number> {
    const rows = await this.database.query<{ n: number }>(
      'outbox_pending',
      `select count(distinct event_id)::int as n from webhook_deliveries where state = 'pending'`,
      [],
    );
    return Number(rows[0]?.n ?? 0);
  }
}
