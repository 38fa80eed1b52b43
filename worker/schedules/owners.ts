// Whether a schedule's owner may still have exports made for it. A JWT subject cannot be revoked here (that is
// the IdP's business), so only API-key owners (`key:<id>`) are checked: against the control store's keys, read
// afresh at each scheduler tick, with the same rule as authentication (core/api-keys.ts unusableReason).

import type { Sql } from '../../control/db.ts';
import { listKeys } from '../../control/keys.ts';
import { type ApiKeyRecord, unusableReason } from '../../core/api-keys.ts';

/**
 * `active`: make its jobs. `revoked` / `expired`: skip its closed periods for good. `unknown`: the key cannot
 * be judged here (no key file, a broken one, or no such id in it): make nothing this tick, skip nothing, so a
 * worker host with a missing or stale copy of the file neither serves a revoked key nor throws periods away.
 */
export type OwnerStanding = 'active' | 'revoked' | 'expired' | 'unknown';

/** One tick's view of the owners. */
export type OwnerSnapshot = (userId: string, nowMs: number) => OwnerStanding;

/** Takes a fresh snapshot; called once per tick. */
export type OwnerCheck = () => Promise<OwnerSnapshot>;

const KEY_OWNER = /^key:([0-9a-f]{16})$/;

/** The owners' standing as the control store's API keys say now. */
export function apiKeyOwners(db: Sql): OwnerCheck {
  return async () => {
    let keys: Map<string, ApiKeyRecord> | undefined;
    try {
      keys = new Map((await listKeys(db)).map((k) => [k.id, k]));
    } catch {
      keys = undefined; // the store did not answer: nothing about keys can be said this tick
    }
    return (userId, nowMs) => standing(keys, userId, nowMs);
  };
}

/** The standing of `userId` given the key records (undefined: no readable key file). */
export function standing(
  keys: ReadonlyMap<string, ApiKeyRecord> | undefined,
  userId: string,
  nowMs: number,
): OwnerStanding {
  const id = KEY_OWNER.exec(userId)?.[1];
  if (id === undefined) return 'active';
  const record = keys?.get(id);
  if (!record) return 'unknown';
  return unusableReason(record, nowMs) ?? 'active';
}
