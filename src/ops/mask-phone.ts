/**
 * A phone number (E.164) as logs may show it: its first digits (the country
 * code and a little more) and its last ones, e.g. `+7999***4567`. Enough to
 * tell numbers apart while debugging; at least three digits are always hidden,
 * so not enough to call one.
 */
export function maskPhone(phoneNumber: string): string {
  const digits = phoneNumber.replace(/^\+/, '');
  const head = digits.length >= 11 ? 4 : 2;
  const tail = digits.length >= 10 ? 4 : 2;
  if (digits.length - head - tail < 3) return '+***';
  return `+${digits.slice(0, head)}***${digits.slice(-tail)}`;
}
