/**
 * A phone number as logs may show it: the country code and the first digits,
 * and the last four, e.g. `+7999***4567`. Enough to tell numbers apart while
 * debugging; not enough to call one.
 */
export function maskPhone(phoneNumber: string): string {
  if (phoneNumber.length <= 8) return `${phoneNumber.slice(0, 2)}***`;
  return `${phoneNumber.slice(0, 5)}***${phoneNumber.slice(-4)}`;
}
