import { describe, expect, it } from 'vitest';
import { JsonArray, withJsonArray } from '../../src/lib/json-array.js';

describe('withJsonArray', () => {
  const items = new JsonArray<{ n: number }>('[{"n":1},{"n":2}]');

  it('puts the text where the empty field was, leaving the other fields as they are', () => {
    const fields = JSON.stringify({ count: 2, results: [], next_cursor: null });
    const json = withJsonArray(fields, 'results', items);
    expect(JSON.parse(json)).toEqual({
      count: 2,
      results: [{ n: 1 }, { n: 2 }],
      next_cursor: null,
    });
  });

  it('is not misled by the field written inside a string: there its quotes are escaped', () => {
    const fields = JSON.stringify({ note: '"results":[]', results: [] });
    const json = withJsonArray(fields, 'results', items);
    expect(JSON.parse(json)).toEqual({ note: '"results":[]', results: [{ n: 1 }, { n: 2 }] });
  });

  it('refuses an answer without the empty field, rather than send it without the items', () => {
    expect(() => withJsonArray('{"results":[1]}', 'results', items)).toThrow(/results/);
    expect(() => withJsonArray('{"a":{"results":[]},"results":[]}', 'results', items)).toThrow();
  });

  it('gives the items back when an answer must embed them', () => {
    expect(items.items()).toEqual([{ n: 1 }, { n: 2 }]);
    expect(JsonArray.empty.items()).toEqual([]);
  });
});
