import { type CountryCode, parsePhoneNumberWithError } from 'libphonenumber-js/max';

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
