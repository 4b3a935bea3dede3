import { describe, expect, it } from 'vitest';
import { SharedRun } from '../../src/lib/shared-run.js';

/** A computation whose runs end when the test says, each answering the value of `state` when it began. */
function controlled() {
  const state = { value: 0, started: 0 };
  const finish: (() => void)[] = [];
  const failNext = { on: false };
  const run = new SharedRun(async () => {
    const seen = state.value;
    state.started += 1;
    const fail = failNext.on;
    failNext.on = false;
    await new Promise<void>((resolve) => finish.push(resolve));
    if (fail) throw new Error('reading failed');
    return seen;
  });
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { state, finish, failNext, run, settle };
}

describe('SharedRun', () => {
  it('callers during a run share the one run after it, which sees what changed before they called', async () => {
    const { state, finish, run, settle } = controlled();
    const first = run.get();
    state.value = 1;
    // Both came after the first run began: it cannot answer them.
    const second = run.get();
    const third = run.get();
    expect(state.started).toBe(1);
    finish.shift()?.();
    expect(await first).toBe(0);
    await settle();
    expect(state.started).toBe(2);
    finish.shift()?.();
    expect(await second).toBe(1);
    expect(await third).toBe(1);
    expect(state.started).toBe(2);
    // Nothing in flight: the next call starts a run of its own.
    state.value = 2;
    const fourth = run.get();
    expect(state.started).toBe(3);
    finish.shift()?.();
    expect(await fourth).toBe(2);
  });

  it('a failed run fails its own callers only', async () => {
    const { finish, failNext, run, settle } = controlled();
    failNext.on = true;
    const failing = run.get();
    const after = run.get();
    finish.shift()?.();
    await expect(failing).rejects.toThrow('reading failed');
    await settle();
    finish.shift()?.();
    expect(await after).toBe(0);
  });
});
