import { type CountryCode, parsePhoneNumberWithError } from 'libphonenumber-js/max';
import { LRUCache } from 'lru-cache';

export type PhonePolicy = {
  defaultRegion: string;
  /** Empty: every region is accepted. */
  allowedRegions: string[];
};

export type PhoneResult =
  | { ok: true; phoneNumber: string }
  | { ok: false; reason: 'invalid' | 'region_not_allowed' };

const MAX_INPUT_LENGTH = 32;

/**
 * Parses any common way of writing a number (`8 (999) 123-45-67`, `+7 999…`)
 * into E.164, so that one number is always one user and one rate-limit key.
 */
export function normalizePhone(input: string, policy: PhonePolicy): PhoneResult {
  const text = input.trim();
  if (text.length === 0 || text.length > MAX_INPUT_LENGTH || !/^[\d\s()+\-.]+$/.test(text)) {
    return { ok: false, reason: 'invalid' };
  }
  let parsed: ReturnType<typeof parsePhoneNumberWithError>;
  try {
    parsed = parsePhoneNumberWithError(text, {
      defaultCountry: policy.defaultRegion as CountryCode,
    });
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  if (!parsed.isValid()) return { ok: false, reason: 'invalid' };
  if (policy.allowedRegions.length > 0) {
    const region = parsed.country;
    if (region === undefined || !policy.allowedRegions.includes(region)) {
      return { ok: false, reason: 'region_not_allowed' };
    }
  }
  return { ok: true, phoneNumber: parsed.number };
}

/**
 * `normalizePhone` under one policy, remembering recent answers: parsing with
 * the full metadata costs about 9 µs, a third of a wrong-code verification.
 * Only inputs short enough to be numbers are remembered.
 */
export function phoneNormalizer(
  policy: PhonePolicy,
  size = 10_000,
): (input: string) => PhoneResult {
  const recent = new LRUCache<string, PhoneResult>({ max: size });
  return (input) => {
    if (input.length > MAX_INPUT_LENGTH * 2) return normalizePhone(input, policy);
    let result = recent.get(input);
    if (result === undefined) {
      result = normalizePhone(input, policy);
      recent.set(input, result);
    }
    return result;
  };
}
