import { describe, expect, it } from 'vitest';
import { isConnectionLost, isDatabaseUnavailable } from '../../src/lib/pg-errors.js';

const pgError = (code: string, message = 'error') => Object.assign(new Error(message), { code });
const wrapped = (cause: unknown) => Object.assign(new Error('Failed query: …'), { cause });

describe('PostgreSQL errors that mean "unavailable"', () => {
  it('a lost connection, wrapped by Drizzle or not', () => {
    for (const error of [
      new Error('Query read timeout'),
      new Error('Connection terminated unexpectedly'),
      pgError('ECONNRESET'),
      pgError('08006'),
      pgError('57P01'),
      pgError('25P03', 'terminating connection due to idle-in-transaction timeout'),
    ]) {
      expect(isConnectionLost(error), error.message).toBe(true);
      expect(isConnectionLost(wrapped(error)), error.message).toBe(true);
      expect(isDatabaseUnavailable(wrapped(error)), error.message).toBe(true);
    }
  });

  it('a server that did not answer in time keeps its connection, but is unavailable', () => {
    for (const error of [
      pgError('57014', 'canceling statement due to statement timeout'),
      pgError('55P03', 'canceling statement due to lock timeout'),
      pgError('53300'),
      new Error('timeout exceeded when trying to connect'),
      new Error('Client was closed and is not queryable'),
    ]) {
      expect(isConnectionLost(error), error.message).toBe(false);
      expect(isDatabaseUnavailable(wrapped(error)), error.message).toBe(true);
    }
  });

  it('a refused query is not an outage', () => {
    for (const error of [pgError('23505'), pgError('40001'), new Error('boom')]) {
      expect(isDatabaseUnavailable(wrapped(error)), error.message).toBe(false);
    }
  });
});
