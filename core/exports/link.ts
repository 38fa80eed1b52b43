// The signed download link of a completed job: the one builder of download_url, for GET /reports/export/:id,
// the schedules' run lists and the webhooks.
import { type KeyRing, signLink } from './signing.ts';

export interface LinkSigner {
  keys: KeyRing;
  /** PUBLIC_BASE_URL without a trailing slash. */
  publicBaseUrl: string;
  urlTtlSeconds: number;
}

/** Valid for the TTL, never past the file's own expiry. */
export function signedDownloadUrl(
  s: LinkSigner,
  job: { job_id: string; user_id: string; expires_at: number },
  nowMs: number,
): { url: string; expiresAt: number } {
  const exp = Math.min(Math.floor(nowMs / 1000) + s.urlTtlSeconds, Math.floor(job.expires_at / 1000));
  const link = signLink(s.keys, job.job_id, exp);
  const q = new URLSearchParams({ exp: String(link.exp), kid: link.kid, sig: link.sig });
  return { url: `${s.publicBaseUrl}/downloads/${job.job_id}?${q.toString()}`, expiresAt: exp * 1000 };
}
