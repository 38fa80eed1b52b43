// Seeded synthetic event stream: sessions, activity and logs as producers would publish them, with redeliveries.
import type { LogEvent, Severity, UsageEvent, UsageType } from '../../core/events.ts';
import { DAY_MS, parseDate, weekday } from './dates.ts';
import { Rng, WeightedTable } from './random.ts';
import { logMessage, SEVERITY_TABLE, usageAttributes } from './templates.ts';
import { buildWorld, type Membership, type World } from './world.ts';

export { generateInvalid, type InvalidExample, invalidExamples } from './invalid.ts';

export interface GenerateOptions {
  /** Total events emitted, duplicates included. */
  events: number;
  seed: number;
  /** First UTC day, 'YYYY-MM-DD'; default '2025-01-01'. */
  start?: string;
  /** Number of days; every timestamp falls in [start, start + days). Default 90. */
  days?: number;
  /** Share of emitted events that re-deliver an earlier event verbatim. Default 0.02. */
  duplicateRate?: number;
  /** Share of original events that are logs. Default 0.2. */
  logShare?: number;
}

/** Events as producers send them: the event schema's input (core/events.ts), so the shapes have one owner. */
export type UsageEventJson = UsageEvent;
export type LogEventJson = LogEvent;

export type GeneratedEvent = UsageEventJson | LogEventJson;

export interface Generated {
  events: GeneratedEvent[];
  originals: number;
  duplicates: number;
}

interface Config {
  events: number;
  seed: number;
  days: number;
  duplicateRate: number;
  logShare: number;
  rangeStartMs: number;
  rangeEndMs: number;
}

type UsageBody = Omit<UsageEventJson, 'event_id' | 'timestamp'>;
type LogBody = Omit<LogEventJson, 'event_id' | 'timestamp'>;
interface Draft {
  ms: number;
  body: UsageBody | LogBody;
}
interface Stamped {
  ms: number;
  event: GeneratedEvent;
}

const HOUR_TABLE = new WeightedTable(
  Array.from({ length: 24 }, (_, h) => h),
  [
    0.2, 0.15, 0.1, 0.1, 0.12, 0.2, 0.4, 0.7, 1, 1.2, 1.3, 1.3, 1.2, 1.3, 1.3, 1.2, 1.1, 1, 0.8, 0.6, 0.5,
    0.4, 0.35, 0.3,
  ],
);
const OFFSETS_MIN = [120, -300, 330, 540, -210, 0, 60];
const MINUTE = 60_000;

function resolveOptions(opts: GenerateOptions): Config {
  const days = opts.days ?? 90;
  const duplicateRate = opts.duplicateRate ?? 0.02;
  const logShare = opts.logShare ?? 0.2;
  if (!Number.isInteger(opts.events) || opts.events < 0)
    throw new RangeError('events must be an integer >= 0');
  if (!Number.isFinite(opts.seed)) throw new RangeError('seed must be a finite number');
  if (!Number.isInteger(days) || days < 1) throw new RangeError('days must be an integer >= 1');
  if (!(duplicateRate >= 0 && duplicateRate < 1)) throw new RangeError('duplicateRate must be in [0, 1)');
  if (!(logShare >= 0 && logShare <= 1)) throw new RangeError('logShare must be in [0, 1]');
  const rangeStartMs = parseDate(opts.start ?? '2025-01-01') * DAY_MS;
  return {
    events: opts.events,
    seed: opts.seed,
    days,
    duplicateRate,
    logShare,
    rangeStartMs,
    rangeEndMs: rangeStartMs + days * DAY_MS,
  };
}

/** Builds groups of related events (a session, a log burst) at a chosen day; ids and timestamps come later. */
class UnitBuilder {
  private readonly seen = new Set<string>();
  private sessions = 0;
  private ghosts = 0;

  constructor(
    private readonly cfg: Config,
    private readonly world: World,
    private readonly rng: Rng,
  ) {}

  unit(dayIndex: number, log: boolean): Draft[] {
    const dayStart = this.cfg.rangeStartMs + dayIndex * DAY_MS;
    const drafts = log ? this.logUnit(dayStart) : this.usageUnit(dayIndex, dayStart);
    return this.clamp(drafts);
  }

  private timeOfDay(dayStart: number, flat: boolean): number {
    const hour = flat ? this.rng.int(0, 23) : HOUR_TABLE.pick(this.rng);
    return dayStart + hour * 3_600_000 + this.rng.int(0, 3_599_999);
  }

  private logUnit(dayStart: number): Draft[] {
    const rng = this.rng;
    const service = this.world.logServiceTable.pick(rng);
    // Machines log around the clock, so only half of the logs follow the human daily curve.
    const t = this.timeOfDay(dayStart, rng.chance(0.5));
    if (!rng.chance(0.15)) {
      const severity = SEVERITY_TABLE.pick(rng);
      return [
        { ms: t, body: { type: 'log', severity, service, message: logMessage(rng, severity, service) } },
      ];
    }
    // An incident: a burst of warnings and errors, some in the very same millisecond (ties on timestamp).
    const drafts: Draft[] = [];
    let at = t;
    for (let i = rng.int(2, 6); i > 0; i--) {
      const severity: Severity = rng.chance(0.6) ? 'error' : 'warning';
      drafts.push({
        ms: at,
        body: { type: 'log', severity, service, message: logMessage(rng, severity, service) },
      });
      if (!rng.chance(0.3)) at += rng.int(1, 5000);
    }
    return drafts;
  }

  private usageUnit(dayIndex: number, dayStart: number): Draft[] {
    const rng = this.rng;
    const r = rng.next();
    if (r < 0.004) return this.ghostRegistration(dayStart);
    const member = this.world.memberships.pick(rng);
    return r < 0.124 ? this.sessionless(member, dayStart) : this.session(member, dayIndex, dayStart);
  }

  /** A sign-up never followed by any activity. */
  private ghostRegistration(dayStart: number): Draft[] {
    const team = this.rng.pick(this.world.teams);
    const member: Membership = { userId: `${team.name}-r${++this.ghosts}`, team };
    this.seen.add(member.userId);
    return [
      this.usage(
        'user_registered',
        this.timeOfDay(dayStart, false),
        member,
        team.serviceTable.pick(this.rng),
      ),
    ];
  }

  /** API-style calls outside any session. */
  private sessionless(member: Membership, dayStart: number): Draft[] {
    const rng = this.rng;
    const service = member.team.serviceTable.pick(rng);
    let t = this.timeOfDay(dayStart, false);
    const drafts: Draft[] = [];
    this.register(member, t, service, drafts);
    for (let i = rng.int(1, 3); i > 0; i--) {
      drafts.push(this.usage('activity', t, member, service));
      t += 1000 + Math.floor(rng.exp(30_000));
    }
    return drafts;
  }

  private session(member: Membership, dayIndex: number, dayStart: number): Draft[] {
    const rng = this.rng;
    const team = member.team;
    const service = team.serviceTable.pick(rng);
    const sessionId = `s-${this.cfg.seed}-${++this.sessions}`;
    const spansMidnight = dayIndex < this.cfg.days - 1 && rng.chance(0.03);
    let t = spansMidnight
      ? dayStart + DAY_MS - rng.int(MINUTE, 40 * MINUTE)
      : this.timeOfDay(dayStart, false);
    const drafts: Draft[] = [];
    this.register(member, t, service, drafts);
    drafts.push(this.usage('session_start', t, member, service, sessionId));
    const activities = rng.chance(0.1) ? 0 : 1 + Math.min(29, Math.floor(rng.exp(4)));
    for (let i = 0; i < activities; i++) {
      t += 5000 + Math.min(20 * MINUTE, Math.floor(rng.exp(90_000)));
      // Users wander into other services of their team, and not every client tags activity with the session.
      const where = rng.chance(0.08) ? team.serviceTable.pick(rng) : service;
      drafts.push(this.usage('activity', t, member, where, rng.chance(0.85) ? sessionId : undefined));
    }
    if (spansMidnight) {
      const end = Math.max(t + 1000, dayStart + DAY_MS + rng.int(1000, 45 * MINUTE));
      drafts.push(this.usage('session_end', end, member, service, sessionId));
    } else if (rng.chance(0.9)) {
      drafts.push(
        this.usage('session_end', t + 1000 + Math.floor(rng.exp(MINUTE)), member, service, sessionId),
      );
    }
    return drafts;
  }

  /** Most users sign up just before they first show up; some were imported and never send a registration. */
  private register(member: Membership, t: number, service: string, drafts: Draft[]): void {
    if (this.seen.has(member.userId)) return;
    this.seen.add(member.userId);
    if (!this.rng.chance(0.85)) return;
    drafts.push(this.usage('user_registered', t - this.rng.int(2000, 15 * MINUTE), member, service));
  }

  private usage(type: UsageType, ms: number, member: Membership, service: string, sessionId?: string): Draft {
    const body: UsageBody = { type, user_id: member.userId, team_id: member.team.id, service };
    if (sessionId !== undefined) body.session_id = sessionId;
    const attributes = usageAttributes(this.rng, type);
    if (attributes) body.attributes = attributes;
    return { ms, body };
  }

  /** Keeps every instant inside [start, end) of the range: late units move back, early sign-ups move up. */
  private clamp(drafts: Draft[]): Draft[] {
    let last = Number.NEGATIVE_INFINITY;
    for (const d of drafts) last = Math.max(last, d.ms);
    const shift = last >= this.cfg.rangeEndMs ? last - this.cfg.rangeEndMs + 1 + this.rng.int(0, MINUTE) : 0;
    for (const d of drafts) d.ms = Math.max(this.cfg.rangeStartMs, d.ms - shift);
    return drafts;
  }
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Mostly `.sssZ`; some whole seconds, microseconds or a local offset: all the same instant semantics. */
function stamp(ms: number, rng: Rng): { ms: number; text: string } {
  const r = rng.next();
  if (r < 0.8) return { ms, text: new Date(ms).toISOString() };
  if (r < 0.86) {
    const whole = ms - (ms % 1000);
    return { ms: whole, text: `${new Date(whole).toISOString().slice(0, 19)}Z` };
  }
  if (r < 0.9) {
    return { ms, text: `${new Date(ms).toISOString().slice(0, 23)}${pad2(rng.int(0, 99))}${rng.int(0, 9)}Z` };
  }
  const offset = rng.pick(OFFSETS_MIN);
  const abs = Math.abs(offset);
  const zone = `${offset < 0 ? '-' : '+'}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
  return { ms, text: `${new Date(ms + offset * MINUTE).toISOString().slice(0, 23)}${zone}` };
}

/** Splits `total` over the days by weight (weekdays busier, slow growth), summing to exactly `total`. */
function dayBudgets(cfg: Config, total: number, rng: Rng): number[] {
  const firstDay = cfg.rangeStartMs / DAY_MS;
  const weights = Array.from({ length: cfg.days }, (_, d) => {
    const wd = weekday(firstDay + d);
    const week = wd === 5 ? 0.5 : wd === 6 ? 0.4 : 1;
    return week * (1 + (0.3 * d) / cfg.days) * rng.float(0.85, 1.15);
  });
  const sum = weights.reduce((a, b) => a + b, 0);
  const budgets: number[] = [];
  let cumulative = 0;
  let assigned = 0;
  for (const w of weights) {
    cumulative += w;
    const upTo = Math.round((total * cumulative) / sum);
    budgets.push(upTo - assigned);
    assigned = upTo;
  }
  return budgets;
}

/** Exactly `count` distinct events, day by day; within a day in time order with a little transport jitter. */
function* originalEvents(cfg: Config, world: World, count: number): Generator<GeneratedEvent> {
  const rng = new Rng(cfg.seed, 'events');
  const builder = new UnitBuilder(cfg, world, rng);
  const budgets = dayBudgets(cfg, count, new Rng(cfg.seed, 'calendar'));
  let carry: Stamped[] = [];
  let nextId = 0;
  let accepted = 0;
  let logs = 0;
  for (let d = 0; d < cfg.days; d++) {
    const budget = budgets[d] ?? 0;
    const batch: Stamped[] = [];
    while (batch.length < budget) {
      // Balancing on the running share keeps the log share exact whatever the unit sizes.
      const wantLog = cfg.logShare > 0 && logs < cfg.logShare * (accepted + 1);
      for (const draft of builder.unit(d, wantLog)) {
        if (batch.length >= budget) break; // a unit cut short is a session that never ended
        const { ms, text } = stamp(draft.ms, rng);
        // Key order as producers usually write it: id, type, timestamp, then the rest.
        const id = `${cfg.seed}-${nextId++}`;
        const { type, ...rest } = draft.body;
        const event = { event_id: id, type, timestamp: text, ...rest } as GeneratedEvent;
        batch.push({ ms, event });
        accepted++;
        if (draft.body.type === 'log') logs++;
      }
    }
    // Events past midnight (sessions spanning it) are published with the next day's traffic.
    const dayEnd = cfg.rangeStartMs + (d + 1) * DAY_MS;
    const all = carry.concat(batch);
    const now = all.filter((s) => s.ms < dayEnd);
    carry = all.filter((s) => s.ms >= dayEnd);
    now.sort((a, b) => a.ms - b.ms);
    for (let i = 0; i + 1 < now.length; i++) {
      if (rng.chance(0.02)) [now[i], now[i + 1]] = [now[i + 1] as Stamped, now[i] as Stamped];
    }
    for (const s of now) yield s.event;
  }
  for (const s of carry) yield s.event; // empty: units are clamped into the range
}

/** The first event cannot be a redelivery, hence the cap. */
function plannedDuplicates(events: number, rate: number): number {
  return Math.min(Math.round(events * rate), Math.max(0, events - 1));
}

function copyEvent(e: GeneratedEvent): GeneratedEvent {
  if (e.type !== 'log' && e.attributes) return { ...e, attributes: { ...e.attributes } };
  return { ...e };
}

/**
 * Yields `events` events lazily (memory stays around one day of traffic). Exactly round(events * duplicateRate)
 * of them are redeliveries of an event emitted earlier (same JSON, same event_id). Do not mutate yielded events:
 * recent ones are kept to be redelivered.
 */
export function* generateEvents(opts: GenerateOptions): Generator<GeneratedEvent> {
  const cfg = resolveOptions(opts);
  const world = buildWorld(new Rng(cfg.seed, 'world'));
  let duplicates = plannedDuplicates(cfg.events, cfg.duplicateRate);
  const originals = originalEvents(cfg, world, cfg.events - duplicates);
  const rng = new Rng(cfg.seed, 'duplicates');
  const recent: GeneratedEvent[] = [];
  const RECENT = 4096;
  let emittedOriginals = 0;
  for (let slot = 0; slot < cfg.events; slot++) {
    const remaining = cfg.events - slot;
    // Selection sampling: exactly `duplicates` redeliveries, spread uniformly over the stream.
    if (
      emittedOriginals > 0 &&
      duplicates > 0 &&
      (duplicates >= remaining || rng.next() < duplicates / remaining)
    ) {
      duplicates--;
      yield copyEvent(rng.pick(recent));
      continue;
    }
    const next = originals.next();
    if (next.done) throw new Error('generator ran out of original events');
    recent[emittedOriginals % RECENT] = next.value;
    emittedOriginals++;
    yield next.value;
  }
}

/** All events in memory: fine up to a few hundred thousand. */
export function generateDataset(opts: GenerateOptions): Generated {
  const events = [...generateEvents(opts)];
  const duplicates = plannedDuplicates(opts.events, opts.duplicateRate ?? 0.02);
  return { events, originals: events.length - duplicates, duplicates };
}

/** The population a seed produces, for tests that want known team, user and service names. */
export function describeWorld(seed: number): {
  teams: string[];
  usageServices: string[];
  logServices: string[];
} {
  const world = buildWorld(new Rng(seed, 'world'));
  return {
    teams: world.teams.map((t) => t.id),
    usageServices: [...world.usageServices],
    logServices: [...world.logServices],
  };
}
