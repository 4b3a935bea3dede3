import { DEVICE_ID_RULE, type DeviceIdProblem } from './auth/device-id.js';
import type { AttemptsLimit } from './auth/otp-service.js';
import type { PhoneResult } from './auth/phone.js';
import type { SendLimit } from './auth/send-limiter.js';

type PhoneRefusal = Extract<PhoneResult, { ok: false }>['reason'];

/**
 * The messages of single fields, under `fields` (`{ "<field>": ["<message>"] }`),
 * for the few that are not Ajv's.
 */
export const fieldMessages = {
  required: 'This field is required.',
  blank: 'This field may not be blank.',
  tooLong: (limit: unknown) => `Ensure this field has no more than ${limit} characters.`,
  type: (type: unknown) => `Must be of type ${type}.`,
  pageLimit: 'Must be a whole number from 1 to 1000.',
  cursor: 'Invalid cursor.',
  eventId: 'Must be an event id (a whole number, 0 or more).',
  captchaRefused: 'The CAPTCHA was not accepted.',
  phone: (reason: PhoneRefusal) => phoneRefusals[reason],
  deviceId: (problem: DeviceIdProblem) =>
    problem === 'malformed'
      ? `A device id is ${DEVICE_ID_RULE}.`
      : 'The device_id field and the X-Device-Id header differ; send one of them.',
  searchTerms: (minLastDigits: number) =>
    `Enter at least ${minLastDigits} digits, a whole number or an invite code.`,
} as const;

const phoneRefusals: Record<PhoneRefusal, string> = {
  invalid: 'Enter a valid phone number, e.g. +79991234567.',
  region_not_allowed: 'Phone numbers from this region are not supported.',
  not_mobile: 'Codes are sent only to mobile numbers.',
};

/** "42 seconds", "1 second", "5 minutes": how long until `seconds` have passed. */
function duration(seconds: number): string {
  const whole = Math.max(1, Math.ceil(seconds));
  if (whole < 120) return whole === 1 ? '1 second' : `${whole} seconds`;
  return `${Math.ceil(whole / 60)} minutes`;
}

const sendRefusals: Record<SendLimit, (retryAfterSeconds: number) => string> = {
  // The cooldown is the answer to an impatient resend: it says when, not "too many".
  cooldown: (seconds) => `A code was just sent. You can request a new one in ${duration(seconds)}.`,
  // Not the caller's doing: numbers of this country are being sent too much (SMS pumping).
  region: () => 'Too many codes are being sent to numbers of this country. Try again later.',
  phone: () => 'Too many codes requested. Try again later.',
  ip: () => 'Too many codes requested. Try again later.',
  global: () => 'Too many codes requested. Try again later.',
};

const attemptsRefusals: Record<AttemptsLimit, string> = {
  code: 'Too many wrong codes. Request a new code.',
  number: 'Too many wrong codes for this number. Try again later.',
  client: 'Too many verification attempts from your network. Try again later.',
};

type ErrorDefinition = {
  status: number;
  /** The `error` of the body: fixed, or made from the typed parameters its throwers pass. */
  // biome-ignore lint/suspicious/noExplicitAny: each definition types its own parameters
  message: string | ((params: any) => string);
};

/** Checks the definitions and keeps their exact types (better-auth's `defineErrorCodes`). */
function defineErrors<const T extends Record<string, ErrorDefinition>>(definitions: T): T {
  return definitions;
}

/**
 * The closed set of error codes the API answers with: the HTTP status and the
 * message of each, side by side, so no thrower writes a message by hand. Every
 * error body is `{ error, code }`, plus `fields` for invalid input,
 * `attempts_left` for a wrong code and `retry_after` for a 429 or 503.
 */
export const errorDefinitions = defineErrors({
  bad_request: {
    status: 400,
    message: ({ problem }: { problem: 'http' | 'url' | 'content_length' | 'other' }) =>
      ({
        http: 'The request is not valid HTTP.',
        // The URL is not echoed: it is the client's own, and may be anything.
        url: 'The request URL is not valid.',
        content_length: 'Content-Length does not match the body.',
        // Another refusal of Fastify's or a plugin's: their texts may echo the request.
        other: 'The request is not valid.',
      })[problem],
  },
  validation_error: {
    status: 400,
    message: (
      params: { problem: 'fields' | 'body' } | { problem: 'search'; minLastDigits: number },
    ) =>
      params.problem === 'search'
        ? fieldMessages.searchTerms(params.minLastDigits)
        : params.problem === 'body'
          ? 'The request body must be a JSON object.'
          : 'Invalid input.',
  },
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  invalid_phone: {
    status: 400,
    message: ({ reason }: { reason: PhoneRefusal }) => phoneRefusals[reason],
  },
  invalid_code: { status: 400, message: 'Invalid verification code.' },
  code_expired: { status: 400, message: 'No valid code for this number. Request a new code.' },
  invalid_cursor: { status: 400, message: 'The cursor is not one this API returned.' },
  captcha_required: { status: 400, message: 'Complete the CAPTCHA first.' },
  captcha_invalid: { status: 400, message: 'The CAPTCHA was not solved. Try again.' },
  invite_not_found: { status: 400, message: 'Invite code not found.' },
  invite_own_code: { status: 400, message: 'You cannot activate your own invite code.' },
  invite_already_activated: { status: 400, message: 'You have already activated an invite code.' },
  invite_cycle: {
    status: 400,
    message: 'This invite code belongs to someone you invited, directly or indirectly.',
  },
  not_authenticated: { status: 401, message: 'Authentication credentials were not provided.' },
  invalid_token: {
    status: 401,
    message: ({ of }: { of: 'session' | 'metrics' }) =>
      of === 'metrics' ? 'Invalid metrics token.' : 'Invalid, expired or revoked token.',
  },
  forbidden: {
    status: 403,
    message: ({ why }: { why: 'blocked' | 'not_admin' }) =>
      why === 'blocked' ? 'This account is blocked.' : 'This account is not an admin.',
  },
  not_found: {
    status: 404,
    message: (params: { method: string; path: string } | { user: 'by_id' }) =>
      'user' in params ? 'No user with this id.' : `No route for ${params.method} ${params.path}.`,
  },
  method_not_allowed: {
    status: 405,
    message: ({ method, path }: { method: string; path?: string }) =>
      path === undefined
        ? `Method ${method} is not allowed.`
        : `Method ${method} is not allowed on ${path}.`,
  },
  request_timeout: { status: 408, message: 'The request was not received in time.' },
  payload_too_large: {
    status: 413,
    message: ({ part }: { part: 'body' | 'chunk_extensions' }) =>
      part === 'body'
        ? 'Request body is too large (16 KiB at most).'
        : 'The chunk extensions of the request body are too large.',
  },
  unsupported_media_type: {
    status: 415,
    message: 'Send application/json or application/x-www-form-urlencoded.',
  },
  expectation_failed: { status: 417, message: 'Only "Expect: 100-continue" is supported.' },
  too_many_attempts: {
    status: 429,
    message: ({ limit }: { limit: AttemptsLimit }) => attemptsRefusals[limit],
  },
  rate_limited: {
    status: 429,
    message: ({ limit, retryAfterSeconds }: { limit: SendLimit; retryAfterSeconds: number }) =>
      sendRefusals[limit](retryAfterSeconds),
  },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  internal_error: { status: 500, message: 'Internal server error.' },
  sms_delivery_failed: { status: 502, message: 'The SMS could not be delivered. Try again later.' },
  service_unavailable: {
    status: 503,
    message: 'Service temporarily unavailable. Try again shortly.',
  },
  captcha_unavailable: {
    status: 503,
    message: 'The CAPTCHA check is unavailable. Try again shortly.',
  },
});

export type ErrorCode = keyof typeof errorDefinitions;

export const errorCodes = Object.keys(errorDefinitions) as ErrorCode[];

export const errorStatus = Object.fromEntries(
  errorCodes.map((code) => [code, errorDefinitions[code].status]),
) as { [C in ErrorCode]: (typeof errorDefinitions)[C]['status'] };

export type ErrorExtras = {
  fields?: Record<string, string[]>;
  attempts_left?: number;
  retry_after?: number;
};

type MessageOf<C extends ErrorCode> = (typeof errorDefinitions)[C]['message'];

/** What a thrower passes after the code: the message's parameters, if it has any, then extras. */
export type ErrorArguments<C extends ErrorCode> =
  MessageOf<C> extends (params: infer P) => string
    ? [params: P, extras?: ErrorExtras]
    : [extras?: ErrorExtras];

/** The message of `code`, made from its parameters. */
export function errorMessage<C extends ErrorCode>(code: C, ...args: ErrorArguments<C>): string {
  const message: ErrorDefinition['message'] = errorDefinitions[code].message;
  return typeof message === 'string' ? message : message(args[0]);
}

/** An expected failure, turned into a response by the one error handler. */
export class ApiError<C extends ErrorCode = ErrorCode> extends Error {
  override name = 'ApiError';
  readonly statusCode: number;
  readonly extras: ErrorExtras;

  constructor(
    readonly code: C,
    ...args: ErrorArguments<C>
  ) {
    // An expected failure needs no stack trace. Capturing one cost 1.13x the
    // CPU per wrong-code answer (bench:paired --workload verify --backend
    // embedded, 3 rounds, median; 1.125-1.141).
    // The message first: once the limit is lowered nothing may throw before it is restored.
    const text = errorMessage(code, ...args);
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(text);
    Error.stackTraceLimit = stackTraceLimit;
    this.statusCode = errorDefinitions[code].status;
    const message: ErrorDefinition['message'] = errorDefinitions[code].message;
    this.extras = (typeof message === 'string' ? args[0] : args[1]) ?? {};
  }
}
