// X-Tally-Signature: "t=<unix seconds>,v1=<hex HMAC-SHA256 of `<t>.<raw body>`>" keyed with the schedule's
// webhook secret (its UTF-8 bytes). The timestamp lets receivers refuse replays; docs/data-engineers.md shows verification.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Tally-Signature';

export function signPayload(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** The receiver's side (also the example in docs/data-engineers.md): signature matches and is at most `toleranceS` old. */
export function verifySignature(
  secret: string,
  body: string,
  header: string,
  nowS: number,
  toleranceS = 300,
): boolean {
  const t = /(?:^|,)t=(\d+)(?:,|$)/.exec(header)?.[1];
  const v1 = /(?:^|,)v1=([0-9a-f]{64})(?:,|$)/.exec(header)?.[1];
  if (!t || !v1 || Math.abs(nowS - Number(t)) > toleranceS) return false;
  const want = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(want, Buffer.from(v1, 'hex'));
}
