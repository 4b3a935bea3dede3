/**
 * An array kept as the JSON text the database made of it, and sent as it is.
 * A referral's JSON is made once, when it is written (`users.as_referral`,
 * by `referral_json`); parsing a profile's 100 of them and encoding them again
 * for every answer was half of the service's CPU on an uncached profile
 * (bench/README.md). The text must be what the route's schema says the items
 * are: `referral_json` and ReferralSchema are held together by the API tests.
 */
export class JsonArray<T> {
  static readonly empty = new JsonArray<never>('[]');

  constructor(readonly json: string) {}

  /** The items, for the rare answer that embeds them in more than a page (an activation). */
  items(): T[] {
    return JSON.parse(this.json) as T[];
  }
}

/**
 * `serialized`, a route serializer's JSON of a value whose `field` was set to
 * `[]`, with that field's items from `array`. A JSON string holds a quote only
 * escaped, so `"field":[]` occurs once, as the property itself.
 */
export function withJsonArray(
  serialized: string,
  field: string,
  array: JsonArray<unknown>,
): string {
  const empty = `"${field}":[]`;
  const at = serialized.indexOf(empty);
  if (at === -1 || serialized.indexOf(empty, at + 1) !== -1) {
    throw new Error(`the serialized answer has no single empty "${field}"`);
  }
  const end = at + empty.length - 2;
  return `${serialized.slice(0, end)}${array.json}${serialized.slice(end + 2)}`;
}
