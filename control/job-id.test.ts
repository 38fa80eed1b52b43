// Deterministic job ids: the same period always gives the same UUID, any other input another one.
import { describe, expect, it } from 'vitest';
import { scheduledJobId } from './job-id.ts';

describe('scheduledJobId', () => {
  it('is stable per (schedule, period) and distinct otherwise', () => {
    const a = scheduledJobId('s1', '2025-01-01');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(scheduledJobId('s1', '2025-01-01')).toBe(a);
    expect(scheduledJobId('s1', '2025-02-01')).not.toBe(a);
    expect(scheduledJobId('s2', '2025-01-01')).not.toBe(a);
  });
});
