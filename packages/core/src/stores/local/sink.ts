import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, type TasklogError } from '../../errors.js';
import { chunkName } from '../shared/chunk-layout.js';
import type { ChunkSink, ExpectedLog } from '../shared/chunked-writer.js';
import {
  exists,
  fsError,
  type Location,
  publishFinal,
  readRange,
  scanChunks,
  writeAtomic,
} from './files.js';

/**
 * The local store's half of a writer: each chunk is a file in the attempt's chunk folder, and
 * finish() concatenates them into the final file (see `publishFinal`), which hashes what it
 * writes, so the writer keeps no running sha256 of its own.
 */
export class LocalChunkSink implements ChunkSink {
  readonly where: string;

  constructor(
    private readonly root: string,
    private readonly loc: Location,
  ) {
    this.where = loc.rel;
  }

  async putChunk(offset: number, bytes: Buffer): Promise<void> {
    // No mkdir here: if the chunk folder is gone the attempt was deleted, and recreating it
    // would publish a log missing its first bytes.
    await writeAtomic(this.loc.chunks, chunkName(offset), bytes);
  }

  /** Concatenates the chunks into the final file while hashing; IntegrityError on mismatch. */
  async finish(want: ExpectedLog): Promise<void> {
    const { loc } = this;
    if (await exists(loc.final)) throw new ConflictError(`log ${loc.rel} is already complete`);
    const scan = await scanChunks(loc.chunks);
    const pieces = async function* () {
      for (const chunk of scan.chunks) {
        const src = await open(path.join(loc.chunks, chunk.name), 'r');
        try {
          yield* readRange(src, 0, 0, chunk.size, undefined);
        } finally {
          await src.close();
        }
      }
    };
    await publishFinal(this.root, loc, pieces(), want);
  }

  removeChunks(): Promise<void> {
    return rm(this.loc.chunks, { recursive: true, force: true });
  }

  mapError(err: unknown, action: 'flush' | 'finish'): TasklogError {
    return fsError(err, this.loc.rel, action);
  }
}
