// The ledger's SQL text never carries a request value: whatever arrives, the text is the same and the values
// travel in query_params.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildLedgerReasonsQuery, buildLedgerTotalsQuery, type IngestLedgerParams } from './ingest-ledger.ts';

const hostile = fc.oneof(
  fc.string(),
  fc.constantFrom("'", "' OR 1=1 --", '{end_date:Date}', '`', ';DROP TABLE x', '\u0000', '\n'),
);
const maybe = (arb: fc.Arbitrary<string>) => fc.option(arb, { nil: undefined });

describe('ledger query builders', () => {
  for (const build of [buildLedgerTotalsQuery, buildLedgerReasonsQuery]) {
    it(`${build.name}: same SQL for any values, values only as parameters`, () => {
      fc.assert(
        fc.property(hostile, hostile, maybe(hostile), maybe(hostile), (start, end, team, service) => {
          const p: IngestLedgerParams = { start_date: start, end_date: end, team_id: team, service };
          const neutral: IngestLedgerParams = {
            start_date: 'x',
            end_date: 'x',
            team_id: team === undefined ? undefined : 'x',
            service: service === undefined ? undefined : 'x',
          };
          const q = build(p);
          expect(q.query).toBe(build(neutral).query);
          expect(q.query_params).toEqual({
            start_date: start,
            end_date: end,
            ...(team === undefined ? {} : { team_id: team }),
            ...(service === undefined ? {} : { service }),
          });
        }),
      );
    });
  }
});
