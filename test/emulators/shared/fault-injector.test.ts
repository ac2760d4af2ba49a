import { describe, expect, it } from 'vitest';
import { FaultInjector, type FaultRequest } from './fault-injector.js';

const put: FaultRequest = {
  method: 'PUT',
  path: '/upload/storage/v1/b/x/o?upload_id=1',
  uploadType: 'resumable',
};
const get: FaultRequest = { method: 'GET', path: '/storage/v1/b/x/o/a', uploadType: undefined };

describe('FaultInjector', () => {
  it('fires a rule only on requests its match describes', () => {
    const faults = new FaultInjector();
    faults.add({ match: { method: 'put', uploadType: 'resumable' }, action: { status: 503 } });
    expect(faults.pick(get)).toBeUndefined();
    expect(faults.pick(put)).toEqual({ status: 503 });
  });

  it('matches a string path as a substring and a RegExp path as a pattern', () => {
    const faults = new FaultInjector();
    faults.add({ match: { path: 'upload_id=' }, action: { status: 500 } });
    faults.add({ match: { path: /\/o\/a$/ }, action: { status: 429 } });
    expect(faults.pick(put)).toEqual({ status: 500 });
    expect(faults.pick(get)).toEqual({ status: 429 });
  });

  it('retires a rule after `times` hits and lets `skip` requests through first', () => {
    const faults = new FaultInjector();
    const handle = faults.add({ action: { reset: true }, times: 2, skip: 1 });
    expect([get, get, get, get].map((r) => faults.pick(r))).toEqual([
      undefined,
      { reset: true },
      { reset: true },
      undefined,
    ]);
    expect(handle.hits).toBe(2);
    expect(faults.size).toBe(0);
  });

  it('stops firing once its handle is removed', () => {
    const faults = new FaultInjector();
    const handle = faults.add({ action: { delayMs: 5 } });
    handle.remove();
    expect(faults.pick(get)).toBeUndefined();
  });

  it('repeats the same random decisions for the same seed', () => {
    const run = () => {
      const faults = new FaultInjector();
      faults.failRandomly({ probability: 0.3, seed: 42, kinds: ['503', '500', 'reset'] });
      return Array.from({ length: 200 }, () => faults.pick(get));
    };
    const first = run();
    expect(run()).toEqual(first);
    const hits = first.filter(Boolean).length;
    expect(hits).toBeGreaterThan(30);
    expect(hits).toBeLessThan(90);
    expect(new Set(first.filter(Boolean).map((a) => JSON.stringify(a))).size).toBe(3);
  });

  it('refuses rules it cannot carry out', () => {
    const faults = new FaultInjector();
    expect(() => faults.add({ action: { status: 404 as 500 } })).toThrow(RangeError);
    expect(() => faults.add({ action: { status: 503 }, probability: 2 })).toThrow(RangeError);
    expect(() => faults.add({ action: { status: 503 }, times: 0 })).toThrow(RangeError);
  });
});
