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

/** Reads `Authorization: Token <key>` (or `Bearer <key>`) and rejects requests without a live token. */
export function requireUser(sessions: Sessions) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    if (header === undefined || header.trim() === '') {
      reply.header('WWW-Authenticate', 'Token');
      throw new ApiError('not_authenticated', 'Authentication credentials were not provided.');
    }
    const match = SCHEME.exec(header);
    const session = match?.[2] ? await sessions.authenticate(match[2]) : null;
    if (!match?.[2] || session === null) {
      reply.header('WWW-Authenticate', 'Token');
      throw new ApiError('invalid_token', 'Invalid, expired or revoked token.');
    }
    request.user = session.user;
    request.token = match[2];
  };
}

export function currentUser(request: FastifyRequest): AuthenticatedUser {
  if (request.user === null) throw new Error('route is missing the requireUser hook');
  return request.user;
}
