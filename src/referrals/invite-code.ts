import { type Random, randomString } from '../lib/random.js';

export const INVITE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export const INVITE_CODE_LENGTH = 6;
const INVITE_FORMAT = /^[A-Z0-9]{6}$/;

export function generateInviteCode(random: Random): string {
  return randomString(random, INVITE_ALPHABET, INVITE_CODE_LENGTH);
}

/** Trimmed and upper-cased, or null when it cannot be an invite code at all. */
export function normalizeInviteCode(input: string): string | null {
  const code = input.trim().toUpperCase();
  return INVITE_FORMAT.test(code) ? code : null;
}
