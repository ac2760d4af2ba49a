import { describe, expect, it } from 'vitest';
import type { LogStore, LogWriter } from '../../store.js';
import { readAll } from '../read-all.js';
import {
  type ContractSuite,
  finishAndExpectStored,
  key,
  wholeCharacters,
  withFixture,
} from './fixture.js';

/** Writers that flush by themselves once their buffer is full (ContractOptions.withFlushBytes). */
export function describeAutomaticFlushes(suite: ContractSuite): void {
  describe('automatic flushes of a full buffer', () => {
    const { withFlushBytes } = suite.options;
    /** A test on a store whose writers flush by themselves at `flushBytes` (skipped without). */
    const itFlushingAt = (
      name: string,
      flushBytes: number,
      test: (store: LogStore) => Promise<void>,
    ) =>
      it.skipIf(!withFlushBytes)(name, async () => {
        await withFixture(await withFlushBytes!(flushBytes), test);
      });
    /**
     * Appends `content` in `step`-byte pieces and returns where the writer flushed by itself on
     * the way (each committedOffset after an append, once), expecting more than three places.
     */
    async function appendStepwise(writer: LogWriter, content: Buffer, step: number) {
      const committed = new Set<number>();
      for (let at = 0; at < content.length; at += step) {
        await writer.append(content.subarray(at, at + step));
        if (writer.committedOffset > 0) committed.add(writer.committedOffset);
      }
      expect(committed.size).toBeGreaterThan(3);
      return [...committed];
    }

    itFlushingAt(
      'end on the last line end and keep the unfinished line buffered',
      40,
      async (store) => {
        const lines = Array.from({ length: 24 }, (_, i) => `${i} é€ line${'x'.repeat(i % 7)}\n`);
        const content = Buffer.from(`${lines.join('')}unfinished 𝄞`);
        const writer = await store.openWriter(key());
        const cuts = await appendStepwise(writer, content, 7);
        for (const cut of cuts) expect(content[cut - 1]).toBe(0x0a);
        const stored = writer.committedOffset;
        expect(await store.stat(key())).toMatchObject({
          size: stored,
          complete: false,
        });
        if (store.capabilities.liveAppend) {
          expect((await readAll(store, key())).equals(content.subarray(0, stored))).toBe(true);
        }
        await finishAndExpectStored(store, writer, content);
      },
    );

    itFlushingAt('cut a line longer than the buffer only between characters', 10, async (store) => {
      const content = Buffer.from(`${'é€𝄞日'.repeat(12)}\nend`);
      const writer = await store.openWriter(key());
      // 3-byte pieces put the end of the buffer inside a character again and again.
      const cuts = await appendStepwise(writer, content, 3);
      for (const cut of cuts) expect(wholeCharacters(content.subarray(0, cut))).toBe(true);
      await finishAndExpectStored(store, writer, content);
    });

    itFlushingAt(
      'leave flush() making every appended byte durable, half a character included',
      8,
      async (store) => {
        const content = Buffer.from('one\ntwo three €');
        const writer = await store.openWriter(key());
        await writer.append(content.subarray(0, 10));
        expect(writer.committedOffset).toBe(4); // "one\n" stored, "two th" waits for its line end
        const half = content.length - 1; // inside the €
        await writer.append(content.subarray(10, half));
        expect(await writer.flush()).toBe(half);
        expect(await store.stat(key())).toMatchObject({ size: half, complete: false });
        await writer.append(content.subarray(half));
        await finishAndExpectStored(store, writer, content);
      },
    );
  });
}
