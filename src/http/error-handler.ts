import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, fieldMessages } from '../errors.js';
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
      return fieldMessages.required;
    case 'minLength':
      return fieldMessages.blank;
    case 'maxLength':
      return fieldMessages.tooLong(issue.params?.limit);
    case 'type':
      return fieldMessages.type(issue.params?.type);
    default:
      // Ajv's own text, as a sentence.
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

function fromFastifyError(error: FastifyError, request: FastifyRequest): ApiError | null {
  if (error.validation) {
    const fields = validationFields(error.validation as ValidationIssue[]);
    const onlyBody = Object.keys(fields).length === 1 && fields.non_field_errors;
    return new ApiError('validation_error', { problem: onlyBody ? 'body' : 'fields' }, { fields });
  }
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return new ApiError('bad_request', { problem: 'url' });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', { part: 'body' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('invalid_json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('bad_request', { problem: 'content_length' });
  }
  if (error instanceof SyntaxError) return new ApiError('invalid_json');
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const [path = ''] = request.url.split('?');
    switch (status) {
      case 404:
        return new ApiError('not_found', { method: request.method, path });
      case 405:
        return new ApiError('method_not_allowed', { method: request.method, path });
      case 413:
        return new ApiError('payload_too_large', { part: 'body' });
      case 415:
        return new ApiError('unsupported_media_type');
      default:
        return new ApiError('bad_request', { problem: 'other' });
    }
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
  let apiError: ApiError | null =
    error instanceof ApiError ? error : fromFastifyError(error, request);
  if (apiError === null) {
    if (error instanceof StoreUnavailableError || isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, 'backing store unavailable');
      apiError = new ApiError('service_unavailable', { retry_after: 5 });
    } else {
      request.log.error({ err: error }, 'unhandled error');
      apiError = new ApiError('internal_error');
    }
  }
  const status = apiError.statusCode;
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

/**
 * A whole HTTP answer with the standard body, for the few that are written
 * straight to the socket, before Fastify has a request to reply to. It always
 * closes the connection: what the client sends next cannot be trusted to
 * start a request.
 */
export function rawErrorAnswer(error: ApiError): string {
  const status = error.statusCode;
  const body = JSON.stringify({ error: error.message, code: error.code });
  const headers = Object.entries(closingHeaders(body)).map(([name, value]) => `${name}: ${value}`);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${headers.join('\r\n')}\r\n\r\n${body}`;
}

/** The same answer through Node's response object, for a request Node has parsed but no route sees. */
export function writeErrorResponse(response: ServerResponse, error: ApiError): void {
  const body = JSON.stringify({ error: error.message, code: error.code });
  response.writeHead(error.statusCode, closingHeaders(body)).end(body);
}

function closingHeaders(body: string): Record<string, string> {
  return {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
  };
}

const clientErrorAnswers = {
  timeout: rawErrorAnswer(new ApiError('request_timeout')),
  headersTooLarge: rawErrorAnswer(new ApiError('headers_too_large')),
  chunkExtensionsTooLarge: rawErrorAnswer(
    new ApiError('payload_too_large', { part: 'chunk_extensions' }),
  ),
  malformed: rawErrorAnswer(new ApiError('bad_request', { problem: 'http' })),
};

/** How long a client that was answered an error may take to close its side. */
const CLOSE_GRACE_MS = 5000;

/**
 * Answers what Node's HTTP parser refused (a malformed request, headers over
 * the size limit, a request not received within the request timeout) with
 * the standard body and `Connection: close`, then ends the connection once the
 * answer is out. Ended, not destroyed: Node goes on reading (and dropping)
 * what the client still sends, so the client reads the answer and a clean
 * close, not a reset that may discard it. Node calls this again for data that
 * arrives after the answer; it is written once.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed || socket.writableEnded) return;
  const net = socket as Socket & { _httpMessage?: ServerResponse | null };
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && net.bytesRead === 0) {
    // A connection opened (a browser's preconnect, say) and never used: no request to answer.
    socket.destroy();
    return;
  }
  // An answer already under way on this connection cannot be followed by another.
  if (!socket.writable || net._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  const answer =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? clientErrorAnswers.timeout
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? clientErrorAnswers.headersTooLarge
        : error.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
          ? clientErrorAnswers.chunkExtensionsTooLarge
          : clientErrorAnswers.malformed;
  socket.end(answer);
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}
