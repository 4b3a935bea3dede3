import type { Database } from '../db/client.js';
import type { Clock } from '../lib/clock.js';

/** What the dashboard counts over the last 24 hours (SPEC 5 stats). */
export type RecentCounts = { users: number; activations: number; sign_ins: number };

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/**
 * A minute is settled this long after it ends: rows carry the time their
 * writer read from its clock just before writing, so no row stamped in a
 * settled minute can still commit, even from an instance whose clock lags.
 */
const SETTLE_MS = 2 * MINUTE_MS;

const ZERO: RecentCounts = { users: 0, activations: 0, sign_ins: 0 };

/** Where each figure's rows are, and the column that dates them. */
const FIGURES = {
  users: { table: 'users', filter: '', at: 'created_at' },
  activations: { table: 'users', filter: '', at: 'activated_at' },
  sign_ins: { table: 'audit_log', filter: "type = 'sign_in' and ", at: 'at' },
} as const;

type Figure = keyof typeof FIGURES;
const FIGURE_NAMES = Object.keys(FIGURES) as Figure[];

/** `from … where …` of a figure's rows dated in `range` (SQL on the date column). */
function rowsOf(figure: Figure, range: (at: string) => string): string {
  const { table, filter, at } = FIGURES[figure];
  return `from ${table} where ${filter}${range(at)}`;
}

/** Each figure's rows per minute in [$1, $2), all figures in one statement. */
const PER_MINUTE = FIGURE_NAMES.map(
  (figure) =>
    `select '${figure}' as figure, floor(extract(epoch from ${FIGURES[figure].at}) / 60)::bigint as minute,
       count(*) as n ${rowsOf(figure, (at) => `${at} >= $1 and ${at} < $2`)} group by 2`,
).join(' union all ');

/**
 * Each figure's rows in [$1, $2) (the minute the window starts in) and in
 * [$3, $4) (not settled, to a little past now: a range open at one end would
 * be planned as a third of the table, PLAN_ONCE).
 */
const LIVE = `select ${FIGURE_NAMES.map(
  (figure) =>
    `(select count(*) ${rowsOf(figure, (at) => `${at} >= $1 and ${at} < $2`)})
       + (select count(*) ${rowsOf(figure, (at) => `${at} >= $3 and ${at} < $4`)}) as ${figure}`,
).join(', ')}`;

/**
 * The last 24 hours' sign-ups, activations and sign-ins, without counting a
 * day of rows on every request. Rows are counted per minute of their time
 * stamp; a settled minute's counts never change (users and audit entries are
 * never deleted, nor their times rewritten), so each is counted once and
 * kept. A request counts live only the minute the window starts in and the
 * last few, unsettled, minutes. Kept per instance: at most 1,440 minutes.
 */
export class RecentCountsOfDay {
  private readonly kept = new Map<number, RecentCounts>();
  /** The kept minutes are [keptFrom, keptTo), and keptTotal their sum. */
  private keptFrom = 0;
  private keptTo = 0;
  private readonly keptTotal: RecentCounts = { ...ZERO };
  private filling: Promise<void> = Promise.resolve();

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
  ) {}

  async lastDay(): Promise<RecentCounts> {
    const nowMs = this.clock.now().getTime();
    const sinceMs = nowMs - DAY_MS;
    const firstWhole = Math.ceil(sinceMs / MINUTE_MS);
    const settledTo = Math.max(firstWhole, Math.floor((nowMs - SETTLE_MS) / MINUTE_MS));
    const keeping = this.keep(firstWhole, settledTo);
    const [live, whole] = await Promise.all([
      this.database.query<Record<Figure, string | number>>('admin_recent_live', LIVE, [
        new Date(sinceMs).toISOString(),
        new Date(firstWhole * MINUTE_MS).toISOString(),
        new Date(settledTo * MINUTE_MS).toISOString(),
        // Rows stamped by a clock ahead of this one count too, as they will once settled.
        new Date(nowMs + SETTLE_MS).toISOString(),
      ]),
      keeping,
    ]);
    const total = { ...ZERO };
    for (const figure of FIGURE_NAMES) {
      total[figure] = Number(live[0]?.[figure] ?? 0) + whole[figure];
    }
    return total;
  }

  private sumKept(from: number, to: number): RecentCounts {
    const sum = { ...ZERO };
    for (let minute = from; minute < to; minute++) {
      const counts = this.kept.get(minute);
      if (counts) for (const figure of FIGURE_NAMES) sum[figure] += counts[figure];
    }
    return sum;
  }

  /**
   * Makes [from, to) kept, counting the minutes not yet kept, and answers
   * their sum, taken in the same step: a later request's step may drop
   * minutes this window still has. One step at a time.
   */
  private keep(from: number, to: number): Promise<RecentCounts> {
    const step = this.filling.then(async () => {
      if (from < this.keptFrom || from > this.keptTo) {
        // The clock went back, or the kept minutes all left the window.
        this.kept.clear();
        Object.assign(this.keptTotal, ZERO);
        this.keptFrom = from;
        this.keptTo = from;
      }
      for (let minute = this.keptFrom; minute < from; minute++) this.drop(minute);
      this.keptFrom = from;
      if (to > this.keptTo) {
        const rows = await this.database.query<{ figure: Figure; minute: string; n: string }>(
          'admin_recent_minutes',
          PER_MINUTE,
          [new Date(this.keptTo * MINUTE_MS).toISOString(), new Date(to * MINUTE_MS).toISOString()],
        );
        for (const row of rows) {
          const minute = Number(row.minute);
          const counts = this.kept.get(minute) ?? { ...ZERO };
          counts[row.figure] += Number(row.n);
          this.keptTotal[row.figure] += Number(row.n);
          this.kept.set(minute, counts);
        }
        this.keptTo = to;
      }
      // An earlier window than the last one kept (a request overtaken by a later one) sums its own minutes.
      return to === this.keptTo ? { ...this.keptTotal } : this.sumKept(from, to);
    });
    // A failed fill fails its request, not the ones after it.
    this.filling = step.then(
      () => {},
      () => {},
    );
    return step;
  }

  private drop(minute: number): void {
    const counts = this.kept.get(minute);
    if (!counts) return;
    for (const figure of FIGURE_NAMES) this.keptTotal[figure] -= counts[figure];
    this.kept.delete(minute);
  }
}
