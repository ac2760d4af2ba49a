import * as grpc from '@grpc/grpc-js';
import { AbortedError, BackendUnavailableError } from '@tasklog/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LogCalls } from '../../../packages/core/src/stores/cloud-logging/calls.js';
import { connectLogging } from '../../../packages/core/src/stores/cloud-logging/client.js';
import {
  type ApiEntryOut,
  markerEntry,
} from '../../../packages/core/src/stores/cloud-logging/entries.js';
import {
  cloudLoggingError,
  isRetryable,
} from '../../../packages/core/src/stores/cloud-logging/errors.js';
import {
  type CloudLoggingEmulator,
  startCloudLoggingEmulator,
} from '../../emulators/cloud-logging/index.js';
import type { FaultAction } from '../../emulators/shared/fault-injector.js';

process.env.METADATA_SERVER_DETECTION = 'none';

const PROJECT = 'grpc-write';
const SETTINGS = {
  resource: { type: 'global', labels: {} },
  pageSize: 1000,
  maxAttempts: 1,
  maxRetryDelayMs: 10,
  requestTimeoutMs: 60_000,
};

/** LogCalls on `endpoint`: tasklog's encoded writes (`sdk` false) or the SDK's writeLogEntries. */
async function callsOn(endpoint: string, sdk = false, requestTimeoutMs = 60_000) {
  const ctx = await connectLogging({
    logName: 'airflow',
    projectId: PROJECT,
    apiEndpoint: endpoint,
    transport: 'grpc',
  });
  return new LogCalls(sdk ? { ...ctx, writeEncoded: undefined } : ctx, {
    ...SETTINGS,
    requestTimeoutMs,
  });
}

function entry(i: number, micros = Date.now() * 1000): ApiEntryOut {
  return markerEntry({ dag_id: 'd', offset: String(i), length: '0' }, micros, `id-${i}`, {});
}

/**
 * A WriteLogEntries server that keeps what it receives as it is (metadata, deadline, bytes) and
 * answers when told.
 */
async function startRecorder() {
  const seen: {
    metadata: Record<string, unknown>;
    deadline: number;
    bytes: Buffer;
    cancelled: boolean;
  }[] = [];
  const state = { hold: false };
  const same = (b: Buffer) => b;
  const server = new grpc.Server();
  server.addService(
    {
      WriteLogEntries: {
        path: '/google.logging.v2.LoggingServiceV2/WriteLogEntries',
        requestStream: false,
        responseStream: false,
        requestSerialize: same,
        requestDeserialize: same,
        responseSerialize: same,
        responseDeserialize: same,
      },
    },
    {
      WriteLogEntries: (
        call: grpc.ServerUnaryCall<Buffer, Buffer>,
        cb: grpc.sendUnaryData<Buffer>,
      ) => {
        const deadline = call.getDeadline();
        const got = {
          metadata: call.metadata.getMap(),
          deadline: Number(deadline),
          bytes: call.request,
          cancelled: false,
        };
        seen.push(got);
        call.on('cancelled', () => {
          got.cancelled = true;
        });
        if (!state.hold) cb(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { seen, state, endpoint: `http://127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

describe('WriteLogEntries over the SDK client’s gRPC stub', () => {
  let recorder: Awaited<ReturnType<typeof startRecorder>>;
  const open: LogCalls[] = [];
  beforeAll(async () => {
    recorder = await startRecorder();
  });
  afterEach(async () => {
    recorder.state.hold = false;
    recorder.seen.length = 0;
    while (open.length) await open.pop()!.ctx.client.close();
  });
  afterAll(() => recorder?.close());

  async function calls(sdk = false, timeoutMs = 60_000) {
    const c = await callsOn(recorder.endpoint, sdk, timeoutMs);
    open.push(c);
    return c;
  }

  it('sends the bytes and metadata the SDK sends for the same entries', async () => {
    const ours = await calls();
    const sdk = await calls(true);
    expect(ours.sends).toBe('protobuf');
    expect(sdk.sends).toBe('objects');
    const entries = [entry(0, 1_700_000_000_123_456), entry(1, 1_700_000_000_123_457)];
    await ours.writeOnce(entries, undefined);
    await sdk.writeOnce(entries, undefined);
    const [a, b] = recorder.seen;
    expect(a!.bytes.equals(b!.bytes)).toBe(true);
    expect(a!.metadata).toEqual(b!.metadata);
    expect(String(a!.metadata['x-goog-api-client'])).toMatch(/gax\/.* gapic\/.* grpc\//);
  });

  it("gives each call tasklog's deadline, and fails a call past it with DEADLINE_EXCEEDED", async () => {
    const ours = await calls(false, 300);
    const started = Date.now();
    await ours.writeOnce([entry(0)], undefined);
    expect(recorder.seen[0]!.deadline).toBeGreaterThanOrEqual(started + 250);
    expect(recorder.seen[0]!.deadline).toBeLessThanOrEqual(Date.now() + 300);
    recorder.state.hold = true;
    const err = await ours.writeOnce([entry(1)], undefined).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect(isRetryable(err)).toBe(true);
  });

  it('cancels the call when its signal aborts, with AbortedError', async () => {
    const ours = await calls();
    recorder.state.hold = true;
    const controller = new AbortController();
    const write = ours.writeOnce([entry(0)], controller.signal);
    await expect.poll(() => recorder.seen.length).toBe(1);
    controller.abort();
    await expect(write).rejects.toBeInstanceOf(AbortedError);
    await expect.poll(() => recorder.seen[0]!.cancelled).toBe(true);
    await expect(ours.writeOnce([entry(1)], controller.signal)).rejects.toBeInstanceOf(
      AbortedError,
    );
  });

  it('is not used over REST, where the SDK encodes JSON', async () => {
    const ctx = await connectLogging({
      logName: 'airflow',
      projectId: PROJECT,
      apiEndpoint: 'http://127.0.0.1:9',
      transport: 'rest',
    });
    expect(ctx.writeEncoded).toBeUndefined();
    await ctx.client.close();
  });
});

describe('errors of encoded writes, as the emulator answers them', () => {
  let emu: CloudLoggingEmulator;
  const open: LogCalls[] = [];
  beforeAll(async () => {
    emu = await startCloudLoggingEmulator();
  });
  afterEach(async () => {
    emu.faults.clear();
    while (open.length) await open.pop()!.ctx.client.close();
  });
  afterAll(async () => {
    await emu?.close();
  });

  /** What writeOnce rejects with, through tasklog's encoding and through the SDK's. */
  async function bothFailures(action: FaultAction | undefined, entries: ApiEntryOut[]) {
    const out: unknown[] = [];
    for (const sdk of [false, true]) {
      const c = await callsOn(`http://${emu.url}`, sdk);
      open.push(c);
      if (action) emu.faults.add({ match: { method: 'WriteLogEntries' }, action, times: 1 });
      out.push(
        await c.writeOnce(entries, undefined).then(
          () => undefined,
          (e: unknown) => e,
        ),
      );
    }
    return out;
  }

  it.each<[string, FaultAction]>([
    ['UNAVAILABLE', { status: 503 }],
    ['INTERNAL', { status: 500 }],
    ['RESOURCE_EXHAUSTED', { status: 429 }],
    ['DEADLINE_EXCEEDED', { status: 408 }],
    ['a lost answer', { reset: true, resetAfterCommit: true }],
  ])(
    'classifies %s as the SDK’s error was: same code, retried, BackendUnavailableError',
    async (_, action) => {
      const [ours, sdk] = await bothFailures(action, [entry(0)]);
      expect(ours).toBeInstanceOf(Error);
      expect((ours as { code: unknown }).code).toBe((sdk as { code: unknown }).code);
      expect(isRetryable(ours)).toBe(true);
      expect(isRetryable(sdk)).toBe(true);
      const mapped = cloudLoggingError(ours, 'log x', 'write');
      expect(mapped).toBeInstanceOf(BackendUnavailableError);
      expect(mapped.message).toBe(cloudLoggingError(sdk, 'log x', 'write').message);
      expect(mapped.cause).toBe(ours);
    },
  );

  it('fails a rejected request (INVALID_ARGUMENT) for good, as the SDK’s error did', async () => {
    const tooNew = (Date.now() + 3 * 86_400_000) * 1000;
    const [ours, sdk] = await bothFailures(undefined, [entry(0, tooNew)]);
    expect((ours as { code: unknown }).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((sdk as { code: unknown }).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(isRetryable(ours)).toBe(false);
    expect(cloudLoggingError(ours, 'log x', 'write').message).toBe(
      cloudLoggingError(sdk, 'log x', 'write').message,
    );
  });

  it('stores what it sends, read back through the SDK', async () => {
    const c = await callsOn(`http://${emu.url}`);
    open.push(c);
    await c.write([entry(7, 1_700_000_000_000_001)], undefined);
    const stored = emu.store.all(c.logName).filter((e) => e.insertId === 'id-7');
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ insertId: 'id-7', labels: { dag_id: 'd', offset: '7' } });
  });
});
