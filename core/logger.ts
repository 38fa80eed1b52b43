// Structured JSON logs to stderr (stdout carries only what a person is meant to read: the URL, the first token).
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string, name = 'tally'): Logger {
  return pino({ name, level }, pino.destination(2));
}
