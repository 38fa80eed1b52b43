// The open days' cells against a brute-force model: for every filter and grouping, each entity counted once per
// group, with the OR of its units' masks and the latest earlier point of the read's level.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { engineHex } from './query.ts';
import type { OpenRead } from './usage-open-day.ts';
import {
  addUnit,
  cellsFromUnits,
  newUnitSet,
  type Unit,
  type Units,
  unitsForRead,
} from './usage-open-units.ts';

const FAMILIES = { 1: 'seen', 2: 'active', 3: 'session' } as const;
type GroupBy = OpenRead['groupBy'];

const unitArb = fc.record({
  team: fc.constantFrom('t1', 't2', 'tè|3'),
  service: fc.constantFrom('api', 'web', 'a:b'),
  mask: fc.integer({ min: 1, max: 127 }),
  prev: fc.tuple(fc.nat(40), fc.nat(40), fc.nat(40), fc.nat(40)),
});

// By family number, then entity: each entity with 1-4 units (one per team and service it had points in).
const unitsArb = fc
  .array(
    fc.tuple(
      fc.constantFrom(1, 2, 3),
      fc.constantFrom('u1', 'u2', 'u3', 'u4', 'u5', 'u6'),
      fc.uniqueArray(unitArb, { minLength: 1, maxLength: 4, selector: (u) => `${u.team}|${u.service}` }),
    ),
    { maxLength: 30 },
  )
  .map((entries) => {
    const units: Units = new Map();
    for (const [f, entity, list] of entries) {
      const byEntity = units.get(f) ?? new Map<string, Unit[]>();
      units.set(f, byEntity);
      byEntity.set(entity, list as Unit[]);
    }
    return units;
  });

/** Sorted lines `group|family|prev|mask|n`, computed the plain way. */
function model(units: Units, filters: OpenRead['filters'], groupBy: GroupBy): string[] {
  const teamLevel = filters.team_id !== undefined || groupBy === 'team_id' || groupBy === 'team_service';
  const serviceLevel = filters.service !== undefined || groupBy === 'service' || groupBy === 'team_service';
  const slot = (teamLevel ? 1 : 0) + (serviceLevel ? 2 : 0);
  const groupOf = (u: Unit) =>
    groupBy === 'team_id'
      ? u.team
      : groupBy === 'service'
        ? u.service
        : groupBy === 'team_service'
          ? `${engineHex(u.team)}:${engineHex(u.service)}`
          : '';
  const n = new Map<string, number>();
  for (const [f, byEntity] of units)
    for (const list of byEntity.values()) {
      const passing = list.filter(
        (u) =>
          (filters.team_id === undefined || u.team === filters.team_id) &&
          (filters.service === undefined || u.service === filters.service),
      );
      for (const g of new Set(passing.map(groupOf))) {
        const mine = passing.filter((u) => groupOf(u) === g);
        const mask = mine.reduce((m, u) => m | u.mask, 0);
        const prev = Math.max(...mine.map((u) => u.prev[slot] as number));
        const key = `${g}|${FAMILIES[f as 1 | 2 | 3]}|${prev}|${mask}`;
        n.set(key, (n.get(key) ?? 0) + 1);
      }
    }
  return [...n].map(([k, c]) => `${k}|${c}`).sort();
}

function lines(units: Units, filters: OpenRead['filters'], groupBy: GroupBy): string[] {
  const read: OpenRead = { open: [], filters, groupBy, since: '2025-01-01', until: '2025-01-07' };
  const out: string[] = [];
  for (const [g, families] of cellsFromUnits(units, read))
    for (const [family, cells] of families)
      for (const c of cells) out.push(`${g}|${family}|${c.prev}|${c.mask}|${c.n}`);
  return out.sort();
}

describe('cellsFromUnits', () => {
  it('counts each entity once per group, with its masks OR-ed and its latest earlier point', () => {
    fc.assert(
      fc.property(
        unitsArb,
        fc.constantFrom(undefined, 't1', 'tè|3'),
        fc.constantFrom(undefined, 'api', 'a:b'),
        fc.constantFrom<GroupBy>(undefined, 'team_id', 'service', 'team_service'),
        (units, team_id, service, groupBy) => {
          const filters = { ...(team_id ? { team_id } : {}), ...(service ? { service } : {}) };
          expect(lines(units, filters, groupBy)).toEqual(model(units, filters, groupBy));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("gives a filtered read the same cells from its team's or service's units as from all of them", () => {
    fc.assert(
      fc.property(
        unitsArb,
        fc.constantFrom(undefined, 't1', 'tè|3', 'none'),
        fc.constantFrom(undefined, 'api', 'a:b', 'none'),
        fc.constantFrom<GroupBy>(undefined, 'team_id', 'service', 'team_service'),
        (units, team_id, service, groupBy) => {
          const set = newUnitSet();
          for (const [f, byEntity] of units)
            for (const [entity, list] of byEntity) for (const u of list) addUnit(set, f, entity, u);
          const filters = { ...(team_id ? { team_id } : {}), ...(service ? { service } : {}) };
          expect(lines(unitsForRead(set, { filters }), filters, groupBy)).toEqual(
            model(units, filters, groupBy),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });
});
