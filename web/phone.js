// libphonenumber-js's browser bundle (served from the installed package): imported for its
// effect, it defines `globalThis.libphonenumber`.
import './vendor/libphonenumber-min.js';

/**
 * A phone number the way a person reads it: the international format, `+7 999 123-45-67`. The API
 * speaks E.164 (`+79991234567`); every number the UI shows passes through here. Anything that does
 * not parse as an international number (a national form as typed, say) is shown as it is.
 * @param {string} number
 * @returns {string}
 */
export function formatPhone(number) {
  const lib = /** @type {any} */ (globalThis).libphonenumber;
  try {
    const parsed = lib?.parsePhoneNumberFromString(number.trim());
    return parsed ? parsed.formatInternational() : number;
  } catch {
    return number;
  }
}
