import {
  type CountryCode,
  type PhoneNumberType,
  parsePhoneNumberWithError,
} from 'libphonenumber-js/max';
import { LRUCache } from 'lru-cache';

export type PhonePolicy = {
  defaultRegion: string;
  /** Empty: every region is accepted. */
  allowedRegions: string[];
  /** Refused even when the allow list is empty or names them. */
  deniedRegions: string[];
  /** Accept fixed-line, VoIP, toll-free, premium-rate and other numbers that are not mobile. */
  allowNonMobile: boolean;
};

export type PhoneResult =
  | { ok: true; phoneNumber: string; region: string | undefined }
  | { ok: false; reason: 'invalid' | 'region_not_allowed' | 'not_mobile' };

const MAX_INPUT_LENGTH = 32;

/**
 * The types that can receive an SMS from us. `FIXED_LINE_OR_MOBILE` is how the
 * metadata describes regions whose ranges do not tell the two apart (the US,
 * Canada, China…): refusing it would refuse every mobile number there.
 * Everything else is refused, and so is a number of no known type: premium-rate
 * and shared-cost ranges are what SMS pumping earns its money on, and with
 * the full metadata a valid number always has a type, so "unknown" only means
 * a range we know nothing about.
 */
const MOBILE_TYPES = new Set<PhoneNumberType>(['MOBILE', 'FIXED_LINE_OR_MOBILE']);

/**
 * Parses any common way of writing a number (`8 (999) 123-45-67`, `+7 999…`)
 * into E.164, so that one number is always one user and one rate-limit key,
 * and applies the deployment's policy of which numbers may sign in.
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
  const region = parsed.country;
  const allowed =
    policy.allowedRegions.length === 0 ||
    (region !== undefined && policy.allowedRegions.includes(region));
  const denied = region !== undefined && policy.deniedRegions.includes(region);
  if (!allowed || denied) return { ok: false, reason: 'region_not_allowed' };
  if (!policy.allowNonMobile) {
    const type = parsed.getType();
    if (type === undefined || !MOBILE_TYPES.has(type)) return { ok: false, reason: 'not_mobile' };
  }
  return { ok: true, phoneNumber: parsed.number, region };
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
