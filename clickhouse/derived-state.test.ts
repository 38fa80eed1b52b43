import { describe, expect, it } from 'vitest';
import { DerivedState, UNVERSIONED } from './derived-state.ts';

// Data versions as data-version.ts writes them: per table, in name order.
const V1 = 'log_events=aaa/1;usage_daily=bbb/2;usage_points=ccc/3';
const V2 = 'log_events=ddd/2;usage_daily=bbb/2;usage_points=ccc/3'; // a log insert
const V3 = 'log_events=ddd/2;usage_daily=bbb/2;usage_points=eee/4'; // then usage_points changed

describe('DerivedState', () => {
  it('computes once per version of its tables and key, shared by concurrent reads', async () => {
    const state = new DerivedState();
    let calls = 0;
    const compute = async () => ++calls;
    const a = state.at(V1);
    const [x, y] = await Promise.all([
      a.derive('k', ['usage_points'], compute),
      state.at(V1).derive('k', ['usage_points'], compute),
    ]);
    expect([x, y, calls]).toEqual([1, 1, 1]);
    expect(await state.at(V1).derive('other', ['usage_points'], compute)).toBe(2);
  });

  it('keeps a value while its tables are unchanged, and drops it when one of them changes', async () => {
    const state = new DerivedState();
    let calls = 0;
    const compute = async () => ++calls;
    expect(await state.at(V1).derive('usage', ['usage_points', 'usage_daily'], compute)).toBe(1);
    expect(await state.at(V1).derive('logs', 'log_', compute)).toBe(2);
    expect(await state.at(V1).derive('prefix', 'usage_', compute)).toBe(3);
    // A log insert: the usage values stay, the logs one is computed again.
    expect(await state.at(V2).derive('usage', ['usage_points', 'usage_daily'], compute)).toBe(1);
    expect(await state.at(V2).derive('prefix', 'usage_', compute)).toBe(3);
    expect(await state.at(V2).derive('logs', 'log_', compute)).toBe(4);
    // usage_points changed: both usage values go, the logs one stays.
    expect(state.size).toBe(3);
    const v3 = state.at(V3);
    expect(state.size).toBe(1);
    expect(await v3.derive('usage', ['usage_points', 'usage_daily'], compute)).toBe(5);
    expect(await v3.derive('prefix', 'usage_', compute)).toBe(6);
    expect(await v3.derive('logs', 'log_', compute)).toBe(4);
    // A table with no part yet is a version too: its first part changes it.
    expect(await v3.derive('new', ['usage_open_points'], compute)).toBe(7);
    expect(
      await state.at(`${V3};usage_open_points=fff/1`).derive('new', ['usage_open_points'], compute),
    ).toBe(8);
  });

  it('never hands what an older version derived to a newer one whose tables changed', async () => {
    const state = new DerivedState();
    let calls = 0;
    const compute = async () => ++calls;
    const old = state.at(V1);
    expect(await old.derive('k', 'log_', compute)).toBe(1);
    expect(await state.at(V2).derive('k', 'log_', compute)).toBe(2);
    // A request of V1 still running computes for itself and leaves V2's value alone.
    expect(await old.derive('k', 'log_', compute)).toBe(3);
    expect(await state.at(V2).derive('k', 'log_', compute)).toBe(2);
    // Where its tables are at the same version, it shares what the newer one holds.
    expect(await state.at(V2).derive('u', ['usage_daily'], compute)).toBe(4);
    expect(await old.derive('u', ['usage_daily'], compute)).toBe(4);
    expect(state.size).toBe(2);
  });

  it('keeps no failure', async () => {
    const state = new DerivedState();
    const snap = state.at(V1);
    await expect(snap.derive('k', '', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await snap.derive('k', '', async () => 7)).toBe(7);
  });

  it('bounds the keys held, least recently used first', async () => {
    const state = new DerivedState({ maxKeys: 2 });
    const snap = state.at(V1);
    await snap.derive('a', '', async () => 'a');
    await snap.derive('b', '', async () => 'b');
    await snap.derive('a', '', async () => 'a again');
    await snap.derive('c', '', async () => 'c');
    expect(state.size).toBe(2);
    expect(await snap.derive('a', '', async () => 'a recomputed')).toBe('a');
    expect(await snap.derive('b', '', async () => 'b recomputed')).toBe('b recomputed');
  });

  it('shares nothing without a version', async () => {
    let calls = 0;
    await UNVERSIONED.derive('k', '', async () => ++calls);
    await UNVERSIONED.derive('k', '', async () => ++calls);
    expect(calls).toBe(2);
  });
});

describe('DerivedState bytes', () => {
  it('bounds the bytes held by what the values weigh', async () => {
    const state = new DerivedState({ maxBytes: 100 });
    const snap = state.at(V1);
    await snap.derive(
      'a',
      '',
      async () => 60,
      (v) => v,
    );
    await snap.derive(
      'b',
      '',
      async () => 30,
      (v) => v,
    );
    expect([state.size, state.heldBytes]).toEqual([2, 90]);
    await snap.derive(
      'c',
      '',
      async () => 50,
      (v) => v,
    );
    await Promise.resolve();
    // 'a' (least recently used) went: 30 + 50.
    expect([state.size, state.heldBytes]).toEqual([2, 80]);
    expect(
      await snap.derive(
        'a',
        '',
        async () => -1,
        () => 0,
      ),
    ).toBe(-1);
  });
});

describe('DerivedState idle', () => {
  it('waits for every computation still running, also of an older version', async () => {
    const state = new DerivedState();
    let release: (v: number) => void = () => undefined;
    const slow = new Promise<number>((r) => {
      release = r;
    });
    void state.at(V1).derive('k', '', () => slow);
    void state.at(V2).derive('k', '', async () => 1);
    let idle = false;
    const waiting = state.idle().then(() => {
      idle = true;
    });
    await Promise.resolve();
    expect(idle).toBe(false);
    release(7);
    await waiting;
    expect(idle).toBe(true);
  });
});
