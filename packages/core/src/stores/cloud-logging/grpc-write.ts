import { AbortedError } from '../../errors.js';

/**
 * One WriteLogEntries call with the request already encoded (entry-protobuf.ts); rejects with
 * the gRPC error (`code`: the status), or AbortedError when `signal` ends it.
 */
export type EncodedWrite = (
  request: Buffer,
  timeoutMs: number,
  signal: AbortSignal | undefined,
) => Promise<void>;

const METHOD = '/google.logging.v2.LoggingServiceV2/WriteLogEntries';

/** The parts of a gax gRPC stub (a @grpc/grpc-js Client) used here. */
interface GrpcStub {
  makeUnaryRequest(
    method: string,
    serialize: (value: Buffer) => Buffer,
    deserialize: (value: Buffer) => Buffer,
    argument: Buffer,
    metadata: unknown,
    options: { deadline: number },
    callback: (err: Error | null) => void,
  ): { cancel(): void };
}

/** What the generated client keeps that this needs (its own fields, not in its typings). */
interface GapicInternals {
  _opts?: { fallback?: unknown };
  _defaults?: {
    writeLogEntries?: {
      otherArgs?: { metadataBuilder?: (abTests: undefined, headers: object) => unknown };
    };
  };
  initialize(): Promise<unknown>;
}

/**
 * WriteLogEntries on the gRPC stub the generated client made, with the request bytes as they
 * are: the SDK's own path would turn tasklog's entries into objects and protobufjs would encode
 * them again (fromObject + encode, most of the CPU of shipping a log). The stub is the client's
 * @grpc/grpc-js Client on the client's channel and channel credentials, so TLS and the
 * credentials' per-call auth are what the SDK's calls get; the metadata is gax's own for this
 * method (its `x-goog-api-client`; WriteLogEntries has no routing header). Undefined when the
 * client does not speak gRPC (`fallback: 'rest'`) or its internals are not the ones read here
 * (another SDK version): its writeLogEntries then serves.
 */
export async function encodedWrite(client: unknown): Promise<EncodedWrite | undefined> {
  const gapic = client as GapicInternals;
  if (gapic._opts === undefined || gapic._opts.fallback) return undefined;
  const buildMetadata = gapic._defaults?.writeLogEntries?.otherArgs?.metadataBuilder;
  if (typeof buildMetadata !== 'function') return undefined;
  const stub = (await gapic.initialize()) as Partial<GrpcStub> | undefined;
  if (typeof stub?.makeUnaryRequest !== 'function') return undefined;
  const grpc = stub as GrpcStub;
  const same = (b: Buffer) => b;
  return (request, timeoutMs, signal) =>
    new Promise<void>((resolve, reject) => {
      const aborted = () => new AbortedError('aborted', { cause: signal?.reason });
      if (signal?.aborted) {
        reject(aborted());
        return;
      }
      let call: { cancel(): void } | undefined;
      const onAbort = () => call?.cancel();
      const metadata = buildMetadata(undefined, {});
      const options = { deadline: Date.now() + timeoutMs };
      call = grpc.makeUnaryRequest(METHOD, same, same, request, metadata, options, (err) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) reject(aborted());
        else if (err) reject(err);
        else resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
}
