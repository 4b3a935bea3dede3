/**
 * The closed set of error codes the API answers with, and the HTTP status of
 * each. Every error body is `{ error, code }`, plus `fields` for invalid input,
 * `attempts_left` for a wrong code and `retry_after` for a 429.
 */
export const errorStatus = {
  bad_request: 400,
  validation_error: 400,
  invalid_json: 400,
  invalid_phone: 400,
  invalid_code: 400,
  code_expired: 400,
  invalid_cursor: 400,
  captcha_required: 400,
  captcha_invalid: 400,
  invite_not_found: 400,
  invite_own_code: 400,
  invite_already_activated: 400,
  invite_cycle: 400,
  not_authenticated: 401,
  invalid_token: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  payload_too_large: 413,
  unsupported_media_type: 415,
  expectation_failed: 417,
  too_many_attempts: 429,
  rate_limited: 429,
  headers_too_large: 431,
  internal_error: 500,
  sms_delivery_failed: 502,
  service_unavailable: 503,
  captcha_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export const errorCodes = Object.keys(errorStatus) as ErrorCode[];

export type ErrorExtras = {
  fields?: Record<string, string[]>;
  attempts_left?: number;
  retry_after?: number;
};

/** An expected failure, turned into a response by the one error handler. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extras: ErrorExtras = {},
  ) {
    // An expected failure needs no stack trace, and capturing one cost more
    // than the rest of a wrong-code answer (measured in bench/).
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
    this.statusCode = errorStatus[code];
  }
}
