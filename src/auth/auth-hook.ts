import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import type { AuthenticatedUser, Sessions } from './session-service.js';

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthenticatedUser | null;
    token: string | null;
  }
}

const SCHEME = /^\s*(Token|Bearer)\s+(\S+)\s*$/i;

/** The token of `Authorization: Token <key>` (or `Bearer <key>`); a 401 without one. */
function bearerToken(request: FastifyRequest, reply: FastifyReply): string {
  const header = request.headers.authorization;
  if (header === undefined || header.trim() === '') {
    reply.header('WWW-Authenticate', 'Token');
    throw new ApiError('not_authenticated');
  }
  const token = SCHEME.exec(header)?.[2];
  if (token === undefined) throw invalidToken(reply);
  return token;
}

function invalidToken(reply: FastifyReply): ApiError {
  reply.header('WWW-Authenticate', 'Token');
  return new ApiError('invalid_token', { of: 'session' });
}

/** Reads `Authorization: Token <key>` (or `Bearer <key>`) and rejects requests without a live token. */
export function requireUser(sessions: Sessions) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const token = bearerToken(request, reply);
    const session = await sessions.authenticate(token);
    if (session === null) throw invalidToken(reply);
    request.user = session.user;
    request.token = token;
  };
}

/**
 * As `requireUser`, for a handler whose read checks the token itself
 * (`Referrals.getProfileOfToken`, one statement on the plain path): the value
 * read, with `request.user` set; the same 401s.
 */
export async function readAsUser<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  read: (token: string) => Promise<{ user: AuthenticatedUser; value: T } | null>,
): Promise<T> {
  const token = bearerToken(request, reply);
  const found = await read(token);
  if (found === null) throw invalidToken(reply);
  request.user = found.user;
  request.token = token;
  return found.value;
}

export function currentUser(request: FastifyRequest): AuthenticatedUser {
  if (request.user === null) throw new Error('route is missing the requireUser hook');
  return request.user;
}
