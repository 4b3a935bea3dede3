/**
 * The device id a client sends at sign-in, one of the fraud signals of SPEC 6
 * (src/events/fraud-signals.ts keeps it on the user and compares it).
 */

/**
 * A device id is what a client says it is: an opaque string it keeps (the web
 * UI: a random UUID in localStorage). Bounded so that it cannot bloat a row
 * or an audit entry; at least 8 characters so that a constant like "1" is
 * not mistaken for one.
 */
export const DEVICE_ID_MIN_LENGTH = 8;
export const DEVICE_ID_MAX_LENGTH = 128;
const DEVICE_ID_PATTERN = /^[A-Za-z0-9._:+/=-]+$/;
export const DEVICE_ID_RULE = `${DEVICE_ID_MIN_LENGTH} to ${DEVICE_ID_MAX_LENGTH} characters: letters, digits and . _ : + / = -`;

export type DeviceIdResult =
  | { ok: true; deviceId: string | null }
  | { ok: false; field: 'device_id' | 'X-Device-Id'; problem: DeviceIdProblem };

/** Why a device id is refused: its message is `fieldMessages.deviceId` (src/errors.ts). */
export type DeviceIdProblem = 'malformed' | 'conflicting';

function isWellFormed(value: string): boolean {
  return (
    value.length >= DEVICE_ID_MIN_LENGTH &&
    value.length <= DEVICE_ID_MAX_LENGTH &&
    DEVICE_ID_PATTERN.test(value)
  );
}

/**
 * The device id of a verify-code request: the `X-Device-Id` header or the
 * `device_id` field (null when neither is sent). Both may be sent, but then
 * they must agree: which one to believe is not ours to guess.
 */
export function readDeviceId(
  header: string | string[] | undefined,
  field: string | undefined,
): DeviceIdResult {
  // Node joins a repeated header with ", ", which no device id contains: it is refused below.
  const fromHeader = Array.isArray(header) ? header.join(', ') : header;
  if (fromHeader !== undefined && !isWellFormed(fromHeader)) {
    return { ok: false, field: 'X-Device-Id', problem: 'malformed' };
  }
  if (field !== undefined) {
    if (!isWellFormed(field)) return { ok: false, field: 'device_id', problem: 'malformed' };
    if (fromHeader !== undefined && fromHeader !== field) {
      return { ok: false, field: 'device_id', problem: 'conflicting' };
    }
  }
  return { ok: true, deviceId: field ?? fromHeader ?? null };
}
