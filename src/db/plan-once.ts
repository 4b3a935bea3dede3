import { type Clock, systemClock } from '../lib/clock.js';

/**
 * The server setting under which named statements keep one plan, made
 * without their parameters' values. Left to choose, PostgreSQL planned many
 * of ours anew on every run: the plan it makes for the values at hand
 * (an array of one token, a LIMIT of 26) always looks cheaper than the
 * generic one, and planning cost more than running them. Measured in
 * bench/README.md; a range on a parameter must then be bounded on both
 * sides, or its generic plan guesses a third of the table.
 *
 * The setting is the session's, so statements without a name (Drizzle's) are
 * planned without their values too, still anew on every run. Each of those
 * with a range or a LIMIT on a parameter (the audit log's pages, fraud
 * signals, a user's live tokens and referrals for admins) narrows by an
 * indexed equality first, which a generic plan finds as well.
 */
export const PLAN_ONCE = { name: 'plan_cache_mode', value: 'force_generic_plan' } as const;

/**
 * How long a plan is kept. A plan follows the tables as they were when it
 * was made: made on a small table it may scan the table, which is right while
 * the table is small and slow once it has grown. A lookup per row of an
 * array is written as a lateral subquery with LIMIT 1, which the planner
 * cannot turn into a hash join over the whole table; on a fresh install,
 * whose tables were never analyzed, the planner assumes a few pages of rows
 * and looks them up by index (test/db/generic-plans.test.ts plans every
 * statement so). A table analyzed while small may still be scanned, each
 * scan small, until the statement is planned again a minute later: a
 * PostgreSQL connection lives a minute (its successor prepares the
 * statements anew), and PGlite prepares a statement anew a minute after it
 * was prepared, by `clock`. PostgreSQL also plans anew after its autovacuum
 * has analyzed a table; PGlite has no autovacuum.
 */
export type Replanning = { afterMs: number; clock: Clock };

export const REPLANNING: Replanning = { afterMs: 60_000, clock: systemClock };
