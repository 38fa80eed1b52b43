// API-key lookup for tests of authentication: the records of a key file written with core/api-keys.ts
// createKey, read afresh per request. The service itself reads them from the control store (control/keys.ts,
// tested in test/integration/control.test.ts and admin-keys.test.ts).
import type { KeyLookup } from '../../api/middleware/auth.ts';
import { readKeys } from '../../core/api-keys.ts';

export function fileKeys(path: string): KeyLookup {
  return { get: async (id) => readKeys(path).find((k) => k.id === id) };
}
