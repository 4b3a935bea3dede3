import { Counter, Histogram, type Registry } from 'prom-client';

/** Seconds; most answers take about a millisecond, so the low end is finer than prom-client's. */
export const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** One method and route pattern: its answers by status, and its durations. */
type Series = {
  method: string;
  route: string;
  statuses: Map<number, number>;
  /** Observations per bucket, not cumulative; the last one is +Inf. */
  buckets: number[];
  sum: number;
  count: number;
};

type Value = { labels: Record<string, string | number>; value: number; metricName?: string };

const COUNTER_NAME = 'http_requests_total';
const HISTOGRAM_NAME = 'http_request_duration_seconds';
const COUNTER_HELP = 'HTTP requests answered, by method, route pattern and status';
const HISTOGRAM_HELP =
  'Time from receiving a request to finishing its answer, by method and route pattern';

/**
 * What the registry reads of a metric. prom-client's typings name a numeric
 * enum for `type` and a `collect` member, where its code reads and writes the
 * type's name and no `collect`: this is the shape of its own `get()` output.
 */
function exported<T>(
  name: string,
  help: string,
  type: 'counter' | 'histogram',
  values: Value[],
): T {
  return { name, help, type, values, aggregator: 'sum' } as T;
}

/**
 * The counts behind `http_requests_total` and `http_request_duration_seconds`,
 * kept in plain numbers by route and method. prom-client's `inc` and `observe`
 * check and hash a label set on every call, also through a child bound to its
 * labels; here a request costs two map lookups and a few additions, and the
 * series are put into the Prometheus shapes only when scraped.
 */
export class RequestCounts {
  private readonly byRoute = new Map<string, Map<string, Series>>();

  record(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.byRoute.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.byRoute.set(route, byMethod);
    }
    let series = byMethod.get(method);
    if (series === undefined) {
      series = {
        method,
        route,
        statuses: new Map(),
        buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
        sum: 0,
        count: 0,
      };
      byMethod.set(method, series);
    }
    series.statuses.set(status, (series.statuses.get(status) ?? 0) + 1);
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number))
      bucket++;
    (series.buckets[bucket] as number)++;
    series.sum += seconds;
    series.count++;
  }

  *series(): Iterable<Series> {
    for (const byMethod of this.byRoute.values()) yield* byMethod.values();
  }
}

/** `http_requests_total{method,route,status}`, read from the counts at scrape time. */
export class RequestCounter extends Counter<'method' | 'route' | 'status'> {
  constructor(
    private readonly counts: RequestCounts,
    registers: Registry[],
  ) {
    super({
      name: COUNTER_NAME,
      help: COUNTER_HELP,
      labelNames: ['method', 'route', 'status'],
      registers,
    });
  }

  override async get(): ReturnType<Counter['get']> {
    const values: Value[] = [];
    for (const { method, route, statuses } of this.counts.series()) {
      for (const [status, value] of statuses)
        values.push({ labels: { method, route, status }, value });
    }
    return exported(COUNTER_NAME, COUNTER_HELP, 'counter', values);
  }
}

/** `http_request_duration_seconds{method,route}`, read from the counts at scrape time. */
export class RequestDurationHistogram extends Histogram<'method' | 'route'> {
  constructor(
    private readonly counts: RequestCounts,
    registers: Registry[],
  ) {
    super({
      name: HISTOGRAM_NAME,
      help: HISTOGRAM_HELP,
      labelNames: ['method', 'route'],
      buckets: [...DURATION_BUCKETS],
      registers,
    });
  }

  override async get(): ReturnType<Histogram['get']> {
    const values: Value[] = [];
    const bucketName = `${HISTOGRAM_NAME}_bucket`;
    for (const { method, route, buckets, sum, count } of this.counts.series()) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += buckets[i] as number;
        values.push({ labels: { le, method, route }, value: cumulative, metricName: bucketName });
      });
      values.push(
        { labels: { le: '+Inf', method, route }, value: count, metricName: bucketName },
        { labels: { method, route }, value: sum, metricName: `${HISTOGRAM_NAME}_sum` },
        { labels: { method, route }, value: count, metricName: `${HISTOGRAM_NAME}_count` },
      );
    }
    return exported(HISTOGRAM_NAME, HISTOGRAM_HELP, 'histogram', values);
  }

  /** What the registry formats (prom-client's own reads its internal map). */
  getForPromString() {
    return this.get();
  }
}
