import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { sendApiError } from '../http/error-handler.js';
import type { AuthenticatedUser, SessionService } from './session-service.js';

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthenticatedUser | null;
    token: string | null;
    /** The user's version read before the token check: reads may be cached under it. */
    userVersion: string | null;
  }
}

const SCHEME = /^\s*(Token|Bearer)\s+(\S+)\s*$/i;

/** Reads `Authorization: Token <key>` (or `Bearer <key>`) and rejects requests without a live token. */
export function requireUser(sessions: SessionService) {
  // Refusals are answered, not thrown: guessing tokens is a path attackers take.
  return async (
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> => {
    const header = request.headers.authorization;
    if (header === undefined || header.trim() === '') {
      reply.header('WWW-Authenticate', 'Token');
      return sendApiError(
        reply,
        new ApiError('not_authenticated', 'Authentication credentials were not provided.'),
      );
    }
    const match = SCHEME.exec(header);
    const session = match?.[2] ? await sessions.authenticate(match[2]) : null;
    if (!match?.[2] || session === null) {
      reply.header('WWW-Authenticate', 'Token');
      return sendApiError(
        reply,
        new ApiError('invalid_token', 'Invalid, expired or revoked token.'),
      );
    }
    request.user = session.user;
    request.userVersion = session.version;
    request.token = match[2];
    return undefined;
  };
}

export function currentUser(request: FastifyRequest): AuthenticatedUser {
  if (request.user === null) throw new Error('route is missing the requireUser hook');
  return request.user;
}
