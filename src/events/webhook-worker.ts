import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import type { Database } from '../db/client.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { Metrics } from '../ops/metrics.js';

/** Delays after the 1st, 2nd, … failed attempt (SPEC 6); the last one repeats. */
export const RETRY_DELAYS_SECONDS = [5, 30, 120, 600, 3600];
/** A delivery not made within this long of its event is given up (state `failed`). */
export const GIVE_UP_AFTER_SECONDS = 24 * 3600;
/** Each delay is stretched or shrunk by up to this fraction, so that receivers coming back are not hit by every retry at once. */
const JITTER = 0.2;
/** No answer within this long is a failed attempt (SPEC 6). */
export const ATTEMPT_TIMEOUT_MS = 10_000;
/**
 * A claimed delivery is due again after this long: longer than an attempt can
 * take, so only an attempt whose instance died (or lost the database) is
 * made again.
 */
export const LEASE_SECONDS = 60;
const BATCH_SIZE = 16;
const POLL_INTERVAL_MS = 1000;
/** Errors kept per delivery: enough to tell the cause, never a receiver's whole page. */
const MAX_ERROR_LENGTH = 200;

export type WebhookWorkerOptions = {
  urls: string[];
  /** whsec_…: the Standard Webhooks secret. */
  secret: string;
  timeoutMs?: number;
  pollIntervalMs?: number;
};

type Claimed = {
  id: string | number;
  url: string;
  attempts: number;
  event_id: string | number;
  type: string;
  data: unknown;
  created_at: Date | string;
};

type Outcome = { ok: true } | { ok: false; error: string; released?: boolean };

const CLAIM_SQL = `
  with due as (
    select id from webhook_deliveries
    where state = 'pending' and next_attempt_at <= $1 and url = any($2::text[])
    order by next_attempt_at, id
    limit $3
    for update skip locked
  )
  update webhook_deliveries d
  set next_attempt_at = $4, claim = $5, attempts = d.attempts + 1, last_attempt_at = $1
  from due, events e
  where d.id = due.id and e.id = d.event_id
  returning d.id, d.url, d.attempts, e.id as event_id, e.type, e.data, e.created_at`;

/**
 * Deliveries to a URL no longer in WEBHOOK_URLS are never claimed; once their
 * event is past the give-up age they are marked failed, as any delivery that
 * got no 2xx for 24 h (not sooner: during a rolling deploy that adds a URL,
 * instances still on the old list must not fail the new URL's deliveries).
 */
const ABANDON_SQL = `
  update webhook_deliveries d
  set state = 'failed', last_error = 'the URL is no longer in WEBHOOK_URLS', claim = null
  from events e
  where e.id = d.event_id and d.state = 'pending' and not (d.url = any($1::text[]))
    and e.created_at <= $2`;

/** The receiver of a URL, for logs: a webhook URL's path or query may hold a secret. */
function receiverOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(an invalid URL)';
  }
}

/**
 * Delivers the outbox: claims due deliveries, POSTs each event signed as the
 * Standard Webhooks specification says, and records the outcome. Every
 * instance runs one; they share the work through the database.
 *
 * At least once: a claim moves the delivery's due time a lease ahead
 * (`FOR UPDATE SKIP LOCKED`: two instances never claim the same row), so an
 * attempt is made by one instance; if that instance dies before recording the
 * outcome, the delivery is due again when the lease runs out. An outcome is
 * recorded only while the claim is still the delivery's own.
 */
export class WebhookWorker {
  private readonly webhook: Webhook;
  private readonly urls: string[];
  private readonly timeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly inFlight = new Set<AbortController>();
  /** Runs of `runOnce` not finished yet, the loop's and any other caller's. */
  private readonly runs = new Set<Promise<number>>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    options: WebhookWorkerOptions,
  ) {
    this.webhook = new Webhook(options.secret);
    this.urls = options.urls;
    this.timeoutMs = options.timeoutMs ?? ATTEMPT_TIMEOUT_MS;
    this.pollIntervalMs = options.pollIntervalMs ?? POLL_INTERVAL_MS;
  }

  /** Polls for due deliveries until `stop`. */
  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /**
   * Claims up to one batch of due deliveries and makes their attempts;
   * answers how many. The entry point of the loop, and of tests (with a fake
   * clock, retries come due without waiting).
   */
  runOnce(): Promise<number> {
    const run = this.claimAndAttempt();
    this.runs.add(run);
    const forget = () => this.runs.delete(run);
    run.then(forget, forget);
    return run;
  }

  private async claimAndAttempt(): Promise<number> {
    const now = this.clock.now();
    const claim = this.random.bytes(12).toString('hex');
    const leaseUntil = new Date(now.getTime() + LEASE_SECONDS * 1000);
    await this.database.query('webhook_abandon', ABANDON_SQL, [
      this.urls,
      new Date(now.getTime() - GIVE_UP_AFTER_SECONDS * 1000),
    ]);
    const claimed = await this.database.query<Claimed>('webhook_claim', CLAIM_SQL, [
      now,
      this.urls,
      BATCH_SIZE,
      leaseUntil,
      claim,
    ]);
    await Promise.all(claimed.map((delivery) => this.attempt(delivery, claim)));
    return claimed.length;
  }

  /**
   * Stops polling; attempts in flight may finish within `graceMs`, then are
   * aborted and released (due at once, for this or another instance).
   */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.runs.size === 0) return;
    const abort = setTimeout(() => {
      for (const controller of this.inFlight) controller.abort();
    }, graceMs);
    try {
      await Promise.allSettled([...this.runs]);
    } finally {
      clearTimeout(abort);
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runOnce()
        .then(
          (count) => count,
          (error: unknown) => {
            // The database is down, say: the deliveries wait in it; try again later.
            this.logger.warn({ err: error }, 'webhook deliveries: claiming failed');
            return 0;
          },
        )
        .then((count) => {
          // A full batch: there may be more due at once.
          this.schedule(count >= BATCH_SIZE ? 0 : this.pollIntervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  private async attempt(delivery: Claimed, claim: string): Promise<void> {
    const outcome = await this.post(delivery);
    const now = this.clock.now();
    const id = delivery.id;
    try {
      if (outcome.ok) {
        await this.settle('webhook_delivered', id, claim, now, null, 'delivered');
        this.metrics.webhookDeliveries.inc({ result: 'delivered' });
        return;
      }
      if (outcome.released) {
        await this.settle('webhook_released', id, claim, now, outcome.error);
        return;
      }
      const delayMs = this.retryDelaySeconds(delivery.attempts) * 1000;
      const giveUpAt = new Date(delivery.created_at).getTime() + GIVE_UP_AFTER_SECONDS * 1000;
      if (now.getTime() + delayMs > giveUpAt) {
        await this.settle('webhook_failed', id, claim, now, outcome.error, 'failed');
        this.metrics.webhookDeliveries.inc({ result: 'failed' });
        this.logger.warn(
          {
            event_id: Number(delivery.event_id),
            receiver: receiverOf(delivery.url),
            attempts: delivery.attempts,
          },
          `webhook delivery given up after ${delivery.attempts} attempts: ${outcome.error}`,
        );
        return;
      }
      await this.settle(
        'webhook_retry',
        id,
        claim,
        new Date(now.getTime() + delayMs),
        outcome.error,
      );
      this.metrics.webhookDeliveries.inc({ result: 'retried' });
    } catch (error) {
      // The outcome is lost with the database: the lease runs out and the attempt is made again.
      this.logger.warn({ err: error }, 'webhook delivery: recording the outcome failed');
    }
  }

  /**
   * Records an attempt's outcome, if the claim is still ours. Delivered and
   * failed are final; otherwise the delivery is due again at `at`.
   */
  private async settle(
    name: string,
    id: string | number,
    claim: string,
    at: Date,
    error: string | null,
    state?: 'delivered' | 'failed',
  ): Promise<void> {
    if (state === 'delivered') {
      await this.database.query(
        name,
        `update webhook_deliveries set state = 'delivered', delivered_at = $3, claim = null,
           last_error = null
         where id = $1 and claim = $2`,
        [id, claim, at],
      );
    } else if (state === 'failed') {
      await this.database.query(
        name,
        `update webhook_deliveries set state = 'failed', claim = null, last_error = $3
         where id = $1 and claim = $2`,
        [id, claim, error],
      );
    } else {
      await this.database.query(
        name,
        `update webhook_deliveries set next_attempt_at = $3, claim = null, last_error = $4
         where id = $1 and claim = $2`,
        [id, claim, at, error],
      );
    }
  }

  /** About 5 s, 30 s, 2 min, 10 min, 1 h, then hourly, each give or take JITTER. */
  private retryDelaySeconds(attempts: number): number {
    const base = RETRY_DELAYS_SECONDS[Math.min(attempts, RETRY_DELAYS_SECONDS.length) - 1] ?? 5;
    const spread = this.random.int(2001) / 1000 - 1;
    return base * (1 + JITTER * spread);
  }

  /** One POST of the event, signed; any 2xx is a delivery. */
  private async post(delivery: Claimed): Promise<Outcome> {
    const messageId = String(delivery.event_id);
    const sentAt = this.clock.now();
    const body = JSON.stringify({
      id: Number(delivery.event_id),
      type: delivery.type,
      timestamp: new Date(delivery.created_at).toISOString(),
      data: delivery.data,
    });
    const controller = new AbortController();
    this.inFlight.add(controller);
    const timeout = setTimeout(() => controller.abort('timeout'), this.timeoutMs);
    try {
      const response = await fetch(delivery.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': messageId,
          'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
          'webhook-signature': this.webhook.sign(messageId, sentAt, body),
        },
        body,
        signal: controller.signal,
        redirect: 'manual',
      });
      // The body is not needed, but must be read (or dropped) to free the connection.
      await response.body?.cancel().catch(() => {});
      if (response.status >= 200 && response.status < 300) return { ok: true };
      return { ok: false, error: `HTTP ${response.status}` };
    } catch (error) {
      if (controller.signal.aborted) {
        return controller.signal.reason === 'timeout'
          ? { ok: false, error: `no answer within ${this.timeoutMs / 1000} s` }
          : { ok: false, error: 'released at shutdown', released: true };
      }
      return { ok: false, error: describeFetchError(error) };
    } finally {
      clearTimeout(timeout);
      this.inFlight.delete(controller);
    }
  }
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const text = cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
  return text.slice(0, MAX_ERROR_LENGTH);
}
