import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, type ErrorCode, errorStatus } from '../errors.js';
import { isDatabaseUnavailable } from '../lib/pg-errors.js';
import { StoreUnavailableError } from '../store/key-value-store.js';

type ValidationIssue = {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
};

function fieldMessage(issue: ValidationIssue): string {
  switch (issue.keyword) {
    case 'required':
      return 'This field is required.';
    case 'minLength':
      return 'This field may not be blank.';
    case 'maxLength':
      return `Ensure this field has no more than ${issue.params?.limit} characters.`;
    case 'type':
      return `Must be of type ${issue.params?.type}.`;
    default:
      return issue.message
        ? `${issue.message[0]?.toUpperCase()}${issue.message.slice(1)}.`
        : 'Invalid value.';
  }
}

/** Turns Ajv's validation errors into `{ field: [messages] }`. */
export function validationFields(issues: ValidationIssue[]): Record<string, string[]> {
  const fields: Record<string, string[]> = {};
  for (const issue of issues) {
    const path = (issue.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
    const field =
      issue.keyword === 'required'
        ? String(issue.params?.missingProperty ?? path)
        : path || 'non_field_errors';
    const message = fieldMessage(issue);
    const list = fields[field] ?? [];
    if (!list.includes(message)) list.push(message);
    fields[field] = list;
  }
  return fields;
}

function fromFastifyError(error: FastifyError): ApiError | null {
  if (error.validation) {
    const fields = validationFields(error.validation as ValidationIssue[]);
    const onlyBody = Object.keys(fields).length === 1 && fields.non_field_errors;
    return new ApiError(
      'validation_error',
      onlyBody ? 'The request body must be a JSON object.' : 'Invalid input.',
      { fields },
    );
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', 'Request body is too large (16 KiB at most).');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(
        'unsupported_media_type',
        'Send application/json or application/x-www-form-urlencoded.',
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('invalid_json', 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('validation_error', 'Content-Length does not match the body.');
  }
  if (error instanceof SyntaxError)
    return new ApiError('invalid_json', 'The request body is not valid JSON.');
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const byStatus: Partial<Record<number, ErrorCode>> = {
      404: 'not_found',
      405: 'method_not_allowed',
      413: 'payload_too_large',
      415: 'unsupported_media_type',
    };
    return new ApiError(byStatus[status] ?? 'validation_error', error.message);
  }
  return null;
}

/**
 * The one error handler: expected failures keep their code and message;
 * outages become 503; anything else is logged and answered with a generic 500
 * whose details never leave the process.
 */
export function errorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  let apiError = error instanceof ApiError ? error : fromFastifyError(error);
  if (apiError === null) {
    if (error instanceof StoreUnavailableError || isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, 'backing store unavailable');
      apiError = new ApiError(
        'service_unavailable',
        'Service temporarily unavailable. Try again shortly.',
        {
          retry_after: 5,
        },
      );
    } else {
      request.log.error({ err: error }, 'unhandled error');
      apiError = new ApiError('internal_error', 'Internal server error.');
    }
  }
  const status = errorStatus[apiError.code];
  if (apiError.extras.retry_after !== undefined)
    reply.header('Retry-After', String(apiError.extras.retry_after));
  // Sent, not returned: a returned reply is a thenable that Fastify waits on
  // (a listener on the response per error), and nothing needs to wait here.
  reply
    .code(status)
    .type('application/json; charset=utf-8')
    .send({
      error: apiError.message,
      code: apiError.code,
      ...apiError.extras,
    });
}
