import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { RequestCounter, RequestCounts, RequestDurationHistogram } from './request-metrics.js';

/** The route label of a request no route matched: scans of random URLs add one series, not one each. */
export const UNMATCHED_ROUTE = 'unmatched';

let processRegistry: Registry | undefined;

/**
 * Memory, CPU, event-loop lag, GC and handles describe the process, not an
 * app, and collecting them starts observers (an event-loop delay timer, a GC
 * observer) that are never stopped. So they are collected once per process,
 * in a registry of our own (prom-client's global one stays untouched), and
 * every app of the process shows them.
 */
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The metrics of SPEC section 7, in one registry per app (several apps in one
 * process, as in tests, do not share counts). Labels are closed sets: a route
 * pattern, never a raw URL; a result or reason from a fixed list.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly registers = [this.registry];

  /** Every answer's count and duration, in plain numbers (src/ops/request-metrics.ts). */
  readonly requests = new RequestCounts();
  readonly httpRequests = new RequestCounter(this.requests, this.registers);
  readonly httpRequestDuration = new RequestDurationHistogram(this.requests, this.registers);

  readonly otpCodesSent = new Counter({
    name: 'otp_codes_sent_total',
    help: 'One-time codes by SMS provider and result: sent, failed (the provider refused or did not answer), rate_limited (refused before sending)',
    labelNames: ['provider', 'result'] as const,
    registers: this.registers,
  });

  readonly otpVerifications = new Counter({
    name: 'otp_verifications_total',
    help: 'Code verifications by result: ok, invalid_code, code_expired, too_many_attempts, account_blocked',
    labelNames: ['result'] as const,
    registers: this.registers,
  });

  readonly signIns = new Counter({
    name: 'sign_ins_total',
    help: 'Successful sign-ins; new_user="true" for the first sign-in of a number',
    labelNames: ['new_user'] as const,
    registers: this.registers,
  });

  readonly inviteActivations = new Counter({
    name: 'invite_activations_total',
    help: 'Invite code activations by result: ok or the error code',
    labelNames: ['result'] as const,
    registers: this.registers,
  });

  readonly rateLimited = new Counter({
    name: 'rate_limited_total',
    help: 'Requests refused with 429, by the limit that refused them: send_cooldown, send_phone, send_ip, send_region, send_global, verify_code, verify_number, verify_client',
    labelNames: ['reason'] as const,
    registers: this.registers,
  });

  readonly webhookDeliveries = new Counter({
    name: 'webhook_deliveries_total',
    help: 'Webhook delivery attempts by result: delivered, retried (failed, tried again later), failed (given up after 24 h)',
    labelNames: ['result'] as const,
    registers: this.registers,
  });

  readonly outboxPending = new Gauge({
    name: 'outbox_pending',
    help: 'Events written but not yet delivered to every webhook',
    registers: this.registers,
  });

  readonly fraudFlags = new Counter({
    name: 'fraud_flags_total',
    help: 'Fraud flags raised on invite activations, by reason',
    labelNames: ['reason'] as const,
    registers: this.registers,
  });

  /** A setting, not a count: lets an alert compare codes sent per hour with the budget. */
  readonly smsMaxPerHour = new Gauge({
    name: 'sms_max_per_hour',
    help: 'SMS_MAX_PER_HOUR: the global budget of messages sent per hour (0: no budget)',
    registers: this.registers,
  });

  /** The Prometheus text format's content type. */
  readonly contentType = this.registry.contentType;

  private readonly scrapeReaders: (() => Promise<void>)[] = [];

  /**
   * Runs `read` before each scrape, to set a gauge from storage (outbox_pending).
   * A failing read leaves the gauge as it was: the scrape still answers.
   */
  readOnScrape(read: () => Promise<void>): void {
    this.scrapeReaders.push(read);
  }

  /** The text Prometheus scrapes: the process's metrics, then this app's. */
  async text(): Promise<string> {
    await Promise.all(this.scrapeReaders.map((read) => read().catch(() => {})));
    const [process, app] = await Promise.all([processMetrics().metrics(), this.registry.metrics()]);
    return `${process}\n${app}`;
  }
}

export type MetricsSettings = { smsMaxPerHour?: number };

export function createMetrics(settings: MetricsSettings = {}): Metrics {
  const metrics = new Metrics();
  metrics.smsMaxPerHour.set(settings.smsMaxPerHour ?? 0);
  return metrics;
}
