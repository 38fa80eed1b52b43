// Content versions: the same across merges of a table, new with anything else that can change its rows.
import { describe, expect, it } from 'vitest';
import { DataVersions, keptRows, type ListedPart, partsAt, versionOf } from './data-version.ts';

const part = (name: string, table = 'log_events', ttl = '0'): ListedPart => [
  '',
  table,
  `/d/store/b2/${name}/`,
  ttl,
];
const content = (v: string, table = 'log_events') => versionOf(v, [`~${table}`]);
const exact = (v: string, table = 'log_events') => versionOf(v, [table]);

describe('DataVersions', () => {
  const start = [part('2025_1_1_0'), part('2025_2_2_0'), part('2025_3_3_0'), part('2026_4_4_0')];

  it('keeps the content version through merges, while the table version changes', () => {
    const versions = new DataVersions();
    const v0 = versions.fromParts(start);
    expect(content(v0)).toMatch(/^~log_events=[\w-]{16}\/4$/);
    const v1 = versions.fromParts([part('2025_1_2_1'), part('2025_3_3_0'), part('2026_4_4_0')]);
    expect(exact(v1)).not.toBe(exact(v0));
    expect(content(v1)).toBe(content(v0));
    // A merge over a gap (block 4 went to another partition), then the same listing again.
    const v2 = versions.fromParts([part('2025_1_3_2'), part('2026_4_4_0')]);
    expect(content(v2)).toBe(content(v0));
    expect(content(versions.fromParts([part('2025_1_3_2'), part('2026_4_4_0')]))).toBe(content(v0));
  });

  it('gives a new content version for an insert, a DELETE, a dropped part, a TTL, and a merge beside any of them', () => {
    const changes = (parts: ListedPart[]) => {
      const versions = new DataVersions();
      const before = content(versions.fromParts(start));
      return content(versions.fromParts(parts)) !== before;
    };
    // An insert, alone, beside a merge, or merged with older parts before the listing saw it.
    expect(changes([part('2025_1_3_1'), part('2026_4_4_0')])).toBe(false);
    expect(changes([part('2025_1_3_1'), part('2026_4_6_1')])).toBe(true);
    expect(changes([...start, part('2026_5_5_0')])).toBe(true);
    expect(changes([part('2025_1_2_1'), part('2025_3_3_0'), part('2026_4_4_0'), part('2026_5_5_0')])).toBe(
      true,
    );
    // A lightweight DELETE (each part again under a mutation version), alone or merged at once.
    expect(changes(start.map(([h, t, p]) => [h, t, p.replace(/_0\/$/, '_0_6/')] as const))).toBe(true);
    expect(changes([part('2025_1_2_1_6'), part('2025_3_3_0_6'), part('2026_4_4_0_6')])).toBe(true);
    // A part dropped, alone or beside a merge.
    expect(changes(start.slice(1))).toBe(true);
    expect(changes([part('2025_1_2_1'), part('2026_4_4_0')])).toBe(true);
    // A merge of parts with a delete TTL may drop rows.
    const versions = new DataVersions();
    const ttl = (name: string) => part(name, 'log_events', '1767225600');
    const before = content(versions.fromParts([ttl('2025_1_1_0'), ttl('2025_2_2_0')]));
    expect(content(versions.fromParts([ttl('2025_1_2_1')]))).not.toBe(before);
    // A part whose name does not parse.
    expect(changes([...start.slice(0, 3), part('patch-2026_4_4_0')])).toBe(true);
    // The same part names in a table made again (another directory).
    expect(changes(start.map(([h, t, p]) => [h, t, p.replace('/b2/', '/c3/')] as const))).toBe(true);
  });

  it('keeps each table to itself, and gives a listing seen before its version again', () => {
    const versions = new DataVersions();
    const usage = part('2025_1_1_0', 'usage_daily');
    const v0 = versions.fromParts([...start, usage]);
    const v1 = versions.fromParts([...start, part('2025_2_2_0', 'usage_daily')]);
    expect(content(v1, 'usage_daily')).not.toBe(content(v0, 'usage_daily'));
    expect(content(v1)).toBe(content(v0));
    // Back to the first listing (a read older than the one before it): the same data, so its version.
    const v2 = versions.fromParts([...start, usage]);
    expect(content(v2, 'usage_daily')).toBe(content(v0, 'usage_daily'));
    // Prefixes read table versions only.
    expect(versionOf(v1, 'log_')).toBe(exact(v1));
  });

  it('gives every source of the process the same versions for the same parts, whatever each saw before', () => {
    const own = (name: string): ListedPart => ['', 'log_events', `/d/store/s1/${name}/`, '0'];
    const api = new DataVersions();
    const first = content(api.fromParts([own('2025_1_1_0'), own('2025_2_2_0')]));
    const merged = [own('2025_1_2_1')];
    expect(content(api.fromParts(merged))).toBe(first);
    // A source started after the merge (the scale bench's read path beside the API's).
    expect(content(new DataVersions().fromParts(merged))).toBe(first);
  });
});

describe('keptRows: whether a later listing holds every row of an earlier one', () => {
  // Each listing through a DataVersions of its own table, so the parts are parsed as the version parses them.
  let n = 0;
  const listing = (...names: Array<string | [string, string]>) => {
    const table = `t${n++}`;
    const v = new DataVersions().fromParts(
      names.map((x) => (typeof x === 'string' ? part(x, table) : part(x[0], table, x[1]))),
    );
    const parts = partsAt(v, table);
    if (!parts) throw new Error('listing not held');
    return parts;
  };
  const earlier = () => listing('2025_1_1_0', '2025_2_2_0', '2026_3_3_0');

  it('holds them through inserts and merges, and an insert merged with what was there', () => {
    expect(keptRows(earlier(), earlier())).toBe(true);
    expect(keptRows(earlier(), listing('2025_1_1_0', '2025_2_2_0', '2026_3_3_0', '2026_4_4_0'))).toBe(true);
    expect(keptRows(earlier(), listing('2025_1_2_1', '2026_3_3_0'))).toBe(true);
    expect(keptRows(earlier(), listing('2025_1_2_1', '2026_3_4_1'))).toBe(true);
  });

  it('does not through a drop, a DELETE, a merge after one, a TTL merge, or a part it cannot parse', () => {
    // A part dropped (DROP PART / PARTITION, TRUNCATE remove parts and make none).
    expect(keptRows(earlier(), listing('2025_1_1_0', '2026_3_3_0'))).toBe(false);
    // A lightweight DELETE: every part under a new mutation version, and then merged.
    expect(keptRows(earlier(), listing('2025_1_1_0_5', '2025_2_2_0_5', '2026_3_3_0_5'))).toBe(false);
    expect(keptRows(earlier(), listing('2025_1_2_1_5', '2026_3_3_0_5'))).toBe(false);
    // The same merge seen only where the DELETE touched parts (the partition's others as they were).
    expect(keptRows(earlier(), listing('2025_1_2_1_5', '2026_3_3_0'))).toBe(false);
    // A merge that may drop rows by a delete TTL.
    expect(keptRows(earlier(), listing(['2025_1_2_1', '1767225600'], '2026_3_3_0'))).toBe(false);
    // A patch part (a lightweight UPDATE) does not parse: its changes are not known.
    expect(
      keptRows(earlier(), listing('2025_1_1_0', '2025_2_2_0', '2026_3_3_0', 'patch-abc-2026_4_4_0')),
    ).toBe(false);
    // Read the other way: an older listing lacks the newer one's inserts.
    expect(keptRows(listing('2025_1_1_0', '2025_2_2_0', '2026_3_3_0', '2026_4_4_0'), earlier())).toBe(false);
  });

  it("gives a version's listing of a table, and none of a table with no part", () => {
    const v = new DataVersions().fromParts([part('2025_1_1_0', 'a'), part('2025_7_7_0', 'b')]);
    expect([...(partsAt(v, 'b')?.values() ?? [])].map((p) => p?.name)).toEqual(['2025_7_7_0']);
    expect(partsAt(v, 'c')?.size).toBe(0);
  });
});
