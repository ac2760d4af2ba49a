import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { OutgoingEntry } from '../../../packages/core/src/stores/cloud-logging/calls.js';
import {
  type ApiEntryOut,
  EntryCutter,
} from '../../../packages/core/src/stores/cloud-logging/entries.js';
import {
  encodeApiEntry,
  WriteRequestEncoder,
} from '../../../packages/core/src/stores/cloud-logging/entry-protobuf.js';
import {
  varintSize,
  writeVarint,
} from '../../../packages/core/src/stores/cloud-logging/protobuf.js';
import { CloudLoggingSink } from '../../../packages/core/src/stores/cloud-logging/sink.js';
import { RecordSplitter } from '../../../packages/core/src/stores/shared/log-records.js';

// tasklog's WriteLogEntries bytes against the SDK's own serializer: the one @grpc/proto-loader
// builds from the SDK's protos.json (protobufjs fromObject + encode), which is what gax sends for
// the objects the store used to hand it.

const sdkRequire = createRequire(createRequire(import.meta.url).resolve('@google-cloud/logging'));
/** WriteLogEntries as proto-loader defines it for gax, with the serializer gax's calls use. */
interface MethodDefinition {
  requestSerialize(request: object): Buffer;
  requestDeserialize(bytes: Buffer): object;
}
const gax = sdkRequire('google-gax') as {
  GrpcClient: new () => {
    loadProtoJSON(json: object): {
      google: {
        logging: { v2: { LoggingServiceV2: { service: Record<string, MethodDefinition> } } };
      };
    };
  };
};
const protos = sdkRequire('@google-cloud/logging-api/build/protos/protos.json') as object;
const method = new gax.GrpcClient().loadProtoJSON(protos).google.logging.v2.LoggingServiceV2.service
  .WriteLogEntries!;

const LOG = 'projects/p/logs/airflow%2Ftasks';
const RESOURCE: { type: string; labels: Record<string, string> } = {
  type: 'global',
  labels: { project_id: 'p', zone: 'ü' },
};

/** The request as the SDK's serializer makes it of today's objects. */
function sdkRequest(entries: ApiEntryOut[], resource = RESOURCE): Buffer {
  return method.requestSerialize({ logName: LOG, resource, entries, partialSuccess: false });
}

/** Strings as log lines hold them: any code points (no lone surrogates), empty, long. */
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.constant(''),
  fc.string({ unit: 'binary-ascii', minLength: 2000, maxLength: 20_000 }),
);
const labels = fc.dictionary(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  { maxKeys: 8 },
);
const entry: fc.Arbitrary<ApiEntryOut> = fc
  .record({
    seconds: fc.oneof(fc.integer({ min: 0, max: 2 ** 34 }), fc.constant(0)),
    nanos: fc.oneof(fc.integer({ min: 0, max: 999_999_999 }), fc.constant(0)),
    insertId: fc.string({ unit: 'binary', maxLength: 40 }),
    labels,
    payload: fc.oneof(
      fc.record({ textPayload: text }),
      fc.record({ jsonPayload: fc.dictionary(fc.string({ maxLength: 15 }), text, { maxKeys: 3 }) }),
    ),
  })
  .map(({ seconds, nanos, insertId, labels, payload }) => ({
    timestamp: { seconds, nanos },
    insertId,
    labels,
    ...('textPayload' in payload
      ? { textPayload: payload.textPayload }
      : {
          jsonPayload: {
            fields: Object.fromEntries(
              Object.entries(payload.jsonPayload).map(([k, v]) => [k, { stringValue: v }]),
            ),
          },
        }),
  }));

describe('the WriteLogEntries request tasklog encodes', () => {
  it('is byte for byte what the SDK serializes, for any entries, labels and timestamps', () => {
    const encoder = new WriteRequestEncoder(LOG, RESOURCE, false);
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 6 }), (entries) => {
        const ours = encoder.request(entries.map(encodeApiEntry));
        const theirs = sdkRequest(entries);
        expect(method.requestDeserialize(ours)).toEqual(method.requestDeserialize(theirs));
        expect(ours.equals(theirs)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('carries a resource without labels as the SDK does', () => {
    const resource = { type: 'k8s_container', labels: {} };
    const encoder = new WriteRequestEncoder(LOG, resource, false);
    const e: ApiEntryOut = {
      timestamp: { seconds: 0, nanos: 0 },
      insertId: '',
      labels: {},
      textPayload: '',
    };
    expect(encoder.request([encodeApiEntry(e)]).equals(sdkRequest([e], resource))).toBe(true);
    expect(encoder.request([]).equals(sdkRequest([], resource))).toBe(true);
  });

  it('writes varints up to 2^53 as protobuf does', () => {
    for (const n of [0, 1, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 35, 2 ** 53 - 1]) {
      const buf = Buffer.alloc(10);
      const end = writeVarint(buf, 0, n);
      expect(end).toBe(varintSize(n));
      let value = 0;
      for (let i = end - 1; i >= 0; i--) value = value * 128 + (buf[i]! & 0x7f);
      expect(value).toBe(n);
    }
  });
});

/** The labels of an attempt as attemptLabels makes them. */
const ATTEMPT = {
  dag_id: 'etl',
  run_id: 'manual__2024-05-01T10:00:00+00:00',
  task_id: 'lo€d',
  map_index: '-1',
  try_number: '1',
  logical_date: '2024-05-01T10:00:00+00:00',
};

/** A sink of the attempt sending `sends`, its clock stepping 1 µs from the same start. */
function sinkFor(sends: 'protobuf' | 'objects', maxPieceBytes: number) {
  let now = 1_714_557_600_000_000;
  const cutter = new EntryCutter({
    labels: ATTEMPT,
    logName: LOG,
    resource: RESOURCE,
    maxPieceBytes,
  });
  return new CloudLoggingSink(
    {
      maxBatchEntries: 1000,
      maxBatchBytes: 5_000_000,
      maxPieceBytes,
      nowMicros: () => now++,
      sends,
      write: async () => {},
      retry: { maxAttempts: 1, retryable: () => false },
    },
    cutter,
    ATTEMPT,
    'etl/run/load/attempt=1.log',
    { lastMicros: 0, pending: undefined },
  );
}

/** Log content: lines of any code points, CRLF, empty lines, invalid UTF-8, long lines. */
const content = fc
  .array(
    fc.oneof(
      fc.string({ unit: 'binary', maxLength: 60 }).map((s) => Buffer.from(`${s}\n`)),
      fc.string({ unit: 'grapheme', maxLength: 60 }).map((s) => Buffer.from(`${s}\r\n`)),
      fc.constant(Buffer.from('\n')),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      fc
        .string({ unit: 'binary-ascii', minLength: 300, maxLength: 3000 })
        .map((s) => Buffer.from(s)),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.concat(parts));

describe("the sink's entries over gRPC", () => {
  it('are the bytes the SDK made of the objects the sink sends over REST, through flushes and the end', () => {
    fc.assert(
      fc.property(
        content,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 4, max: 400 }),
        (log, cuts, maxPieceBytes) => {
          const sinks = [sinkFor('protobuf', maxPieceBytes), sinkFor('objects', maxPieceBytes)];
          const outs: OutgoingEntry[][] = [[], []];
          const splitters = sinks.map(() => new RecordSplitter(0, maxPieceBytes));
          const at = [...new Set(cuts.map((c) => c % (log.length + 1)))].sort((a, b) => a - b);
          let from = 0;
          for (const cut of [...at, log.length]) {
            sinks.forEach((sink, i) => {
              const records = splitters[i]!.push(log.subarray(from, cut));
              records.push(...splitters[i]!.flush());
              for (const q of sink.encode(records, 'flush')) outs[i]!.push(q.entry);
            });
            from = cut;
          }
          sinks.forEach((sink, i) => {
            for (const q of sink.encode(splitters[i]!.end(), 'end')) outs[i]!.push(q.entry);
            outs[i]!.push(sink.encodeEnd(log.length, 'f'.repeat(64)).entry);
          });
          const [bytes, objects] = outs as [Buffer[], ApiEntryOut[]];
          const ours = new WriteRequestEncoder(LOG, RESOURCE, false).request(bytes);
          expect(ours.equals(sdkRequest(objects))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("count each entry's exact size in the request toward the batch limit", () => {
    const sink = sinkFor('protobuf', 1000);
    const queued = sink.encode(
      new RecordSplitter(0, 1000).push(Buffer.from('héllo\n\nwörld\n')),
      'append',
    );
    const request = new WriteRequestEncoder(LOG, RESOURCE, false);
    const empty = request.request([]).length;
    for (const q of queued) {
      expect(request.request([q.entry as Buffer]).length - empty).toBe(q.bytes);
    }
  });
});
