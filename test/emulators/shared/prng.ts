/**
 * mulberry32: small, fast and good enough to make fault runs reproducible from a seed. Every
 * random decision of the emulators (fault rules, bulk-item rejections, the fault proxy) draws
 * from one of these, so a failing run can be replayed with its seed.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
