// A refused authentication: the message for the caller, plus a reason code and the claimed identity for the
// system log. Nothing here ever holds the token or key itself.
import { Unauthenticated } from '../../core/errors.ts';

export type FailureReason =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'not-yet-valid'
  | 'bad-signature'
  | 'algorithm'
  | 'unknown-kid'
  | 'claims'
  | 'api-key';

export class AuthFailure extends Unauthenticated {
  constructor(
    message: string,
    readonly reason: FailureReason,
    /** Who the caller claimed to be (unverified sub, kid or key id), already made safe to log. */
    readonly who: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** An attacker-chosen string made safe for a log line: printable ASCII, at most 64 characters. */
export function loggable(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length === 0) return undefined;
  const clean = v.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}...` : clean;
}
