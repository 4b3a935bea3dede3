import type { Db } from '../db/client.js';

export type ActivationParties = { refereeId: number; referrerId: number };

/**
 * The fraud flags of an activation (SPEC 6: `same_ip`, `same_device`,
 * `velocity`), computed in the activation's transaction and written into its
 * `invite.activated` event. None yet: the fraud signals plug in here
 * (`flagActivation(tx, …)`), so that the event always carries what was flagged.
 */
export async function activationFlags(_tx: Db, _parties: ActivationParties): Promise<string[]> {
  return [];
}
