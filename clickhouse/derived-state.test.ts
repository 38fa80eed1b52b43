import { describe, expect, it } from 'vitest';
import { DerivedState, UNVERSIONED } from './derived-state.ts';

describe('DerivedState', () => {
  it('computes once per version and key, shared by concurrent reads', async () => {
    const state = new DerivedState();
    let calls = 0;
    const compute = async () => ++calls;
    const a = state.at('v1');
    const [x, y] = await Promise.all([a.derive('k', compute), state.at('v1').derive('k', compute)]);
    expect([x, y, calls]).toEqual([1, 1, 1]);
    expect(await state.at('v1').derive('other', compute)).toBe(2);
  });

  it('drops what an older version derived, and never hands it to a newer one', async () => {
    const state = new DerivedState();
    let calls = 0;
    const compute = async () => ++calls;
    const old = state.at('v1');
    expect(await old.derive('k', compute)).toBe(1);
    expect(await state.at('v2').derive('k', compute)).toBe(2);
    // A request of v1 still running computes for itself and leaves v2's state alone.
    expect(await old.derive('k', compute)).toBe(3);
    expect(await state.at('v2').derive('k', compute)).toBe(2);
    expect(state.size).toBe(1);
  });

  it('keeps no failure', async () => {
    const state = new DerivedState();
    const snap = state.at('v1');
    await expect(snap.derive('k', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await snap.derive('k', async () => 7)).toBe(7);
  });

  it('bounds the keys of a version, least recently used first', async () => {
    const state = new DerivedState({ maxKeys: 2 });
    const snap = state.at('v1');
    await snap.derive('a', async () => 'a');
    await snap.derive('b', async () => 'b');
    await snap.derive('a', async () => 'a again');
    await snap.derive('c', async () => 'c');
    expect(state.size).toBe(2);
    expect(await snap.derive('a', async () => 'a recomputed')).toBe('a');
    expect(await snap.derive('b', async () => 'b recomputed')).toBe('b recomputed');
  });

  it('shares nothing without a version', async () => {
    let calls = 0;
    await UNVERSIONED.derive('k', async () => ++calls);
    await UNVERSIONED.derive('k', async () => ++calls);
    expect(calls).toBe(2);
  });
});

describe('DerivedState bytes', () => {
  it('bounds the bytes of a version by what the values weigh', async () => {
    const state = new DerivedState({ maxBytes: 100 });
    const snap = state.at('v1');
    await snap.derive(
      'a',
      async () => 60,
      (v) => v,
    );
    await snap.derive(
      'b',
      async () => 30,
      (v) => v,
    );
    expect([state.size, state.heldBytes]).toEqual([2, 90]);
    await snap.derive(
      'c',
      async () => 50,
      (v) => v,
    );
    await Promise.resolve();
    // 'a' (least recently used) went: 30 + 50.
    expect([state.size, state.heldBytes]).toEqual([2, 80]);
    expect(
      await snap.derive(
        'a',
        async () => -1,
        () => 0,
      ),
    ).toBe(-1);
  });
});

describe('DerivedState ready and ask', () => {
  it('tells a computed value without starting one, and counts asks per version', async () => {
    const state = new DerivedState();
    const snap = state.at('v1');
    expect(snap.ready('k')).toBeUndefined();
    expect([snap.ask('k'), snap.ask('k'), snap.ask('other')]).toEqual([1, 2, 1]);
    const p = snap.derive('k', async () => 42);
    expect(snap.ready('k')).toBeUndefined();
    await p;
    await Promise.resolve();
    expect(snap.ready('k')).toBe(42);
    const next = state.at('v2');
    expect([next.ready('k'), next.ask('k')]).toEqual([undefined, 1]);
    expect(snap.ready('k')).toBeUndefined();
  });
});

describe('DerivedState idle', () => {
  it('waits for every computation still running, also of an older version', async () => {
    const state = new DerivedState();
    let release: (v: number) => void = () => undefined;
    const slow = new Promise<number>((r) => {
      release = r;
    });
    void state.at('v1').derive('k', () => slow);
    void state.at('v2').derive('k', async () => 1);
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
