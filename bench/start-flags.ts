// The node flags and allocator settings `npm start` runs with (package.json: its heap sizes, glibc's MALLOC_*
// defaults), for the bench children that stand for the service: their RSS and GC pauses are then the service's.
import { readFileSync } from 'node:fs';

const startScript =
  (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts.start ??
  '';

/** `--max-…=N` flags of the start script, in order. */
export const START_NODE_FLAGS = (startScript.match(/--max-[a-z-]+=\d+/g) ?? []) as string[];

/** The start script's `NAME=${NAME:-default}` allocator settings, as their defaults. */
export const START_ENV = Object.fromEntries(
  [...startScript.matchAll(/\b(MALLOC_[A-Z_]+)=\$\{\1:-([^}]+)\}/g)].map((m) => [m[1], m[2]]),
) as Record<string, string>;
