import { describe, expect, it } from 'vitest';
import type { LogWriter } from '../../store.js';
import { readAll } from '../read-all.js';
import { type ContractSuite, key, sha256, wholeCharacters, withFixture } from './fixture.js';

/** Writers that flush by themselves once their buffer is full (ContractOptions.withFlushBytes). */
export function describeAutomaticFlushes(suite: ContractSuite): void {
  describe('automatic flushes of a full buffer', () => {
    const { withFlushBytes } = suite.options;
    /** Appends `content` in `step`-byte pieces; returns committedOffset after each append. */
    async function appendStepwise(writer: LogWriter, content: Buffer, step: number) {
      const committed: number[] = [];
      for (let at = 0; at < content.length; at += step) {
        await writer.append(content.subarray(at, at + step));
        committed.push(writer.committedOffset);
      }
      return committed;
    }

    it.skipIf(!withFlushBytes)(
      'end on the last line end and keep the unfinished line buffered',
      async () => {
        await withFixture(await withFlushBytes!(40), async (store) => {
          const lines = Array.from({ length: 24 }, (_, i) => `${i} é€ line${'x'.repeat(i % 7)}\n`);
          const content = Buffer.from(`${lines.join('')}unfinished 𝄞`);
          const writer = await store.openWriter(key());
          const committed = await appendStepwise(writer, content, 7);
          const cuts = [...new Set(committed)].filter((c) => c > 0);
          expect(cuts.length).toBeGreaterThan(3);
          for (const cut of cuts) expect(content[cut - 1]).toBe(0x0a);
          const stored = writer.committedOffset;
          expect(await store.stat(key())).toMatchObject({
            size: stored,
            complete: false,
          });
          if (store.capabilities.liveAppend) {
            expect((await readAll(store, key())).equals(content.subarray(0, stored))).toBe(true);
          }
          await writer.finish({ size: content.length, sha256: sha256(content) });
          expect((await readAll(store, key())).equals(content)).toBe(true);
        });
      },
    );

    it.skipIf(!withFlushBytes)(
      'cut a line longer than the buffer only between characters',
      async () => {
        await withFixture(await withFlushBytes!(10), async (store) => {
          const content = Buffer.from(`${'é€𝄞日'.repeat(12)}\nend`);
          const writer = await store.openWriter(key());
          // 3-byte pieces put the end of the buffer inside a character again and again.
          const committed = await appendStepwise(writer, content, 3);
          const cuts = [...new Set(committed)].filter((c) => c > 0);
          expect(cuts.length).toBeGreaterThan(3);
          for (const cut of cuts) expect(wholeCharacters(content.subarray(0, cut))).toBe(true);
          await writer.finish({ size: content.length, sha256: sha256(content) });
          expect((await readAll(store, key())).equals(content)).toBe(true);
        });
      },
    );

    it.skipIf(!withFlushBytes)(
      'leave flush() making every appended byte durable, half a character included',
      async () => {
        await withFixture(await withFlushBytes!(8), async (store) => {
          const content = Buffer.from('one\ntwo three €');
          const writer = await store.openWriter(key());
          await writer.append(content.subarray(0, 10));
          expect(writer.committedOffset).toBe(4); // "one\n" stored, "two th" waits for its line end
          const half = content.length - 1; // inside the €
          await writer.append(content.subarray(10, half));
          expect(await writer.flush()).toBe(half);
          expect(await store.stat(key())).toMatchObject({ size: half, complete: false });
          await writer.append(content.subarray(half));
          await writer.finish({ size: content.length, sha256: sha256(content) });
          expect((await readAll(store, key())).equals(content)).toBe(true);
        });
      },
    );
  });
}
