import { createRequire } from 'node:module';
import { v2 } from '@google-cloud/logging';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CloudLoggingEmulator, startCloudLoggingEmulator } from './index.js';
import { sdkLogging } from './sdk-client.js';

process.env.METADATA_SERVER_DETECTION = 'none';

// google-auth-library is the SDK's dependency, not the test package's: its PassThroughClient
// sends requests without credentials, which the REST transport needs against an emulator.
const sdkRequire = createRequire(createRequire(import.meta.url).resolve('@google-cloud/logging'));
const { PassThroughClient } = sdkRequire('google-auth-library') as {
  PassThroughClient: new () => object;
};

const PROJECT = 'emu-project';
const LOG = `projects/${PROJECT}/logs/airflow`;

interface ApiEntry {
  logName?: string;
  insertId?: string;
  textPayload?: string;
  labels?: Record<string, string>;
  resource?: { type?: string; labels?: Record<string, string> };
  timestamp?: { seconds?: string | number; nanos?: number };
}

// The generated client is untyped in the SDK's typings (`v2: any`); these are the calls used.
interface GapicClient {
  writeLogEntries(req: object, opts?: object): Promise<unknown>;
  listLogEntries(
    req: object,
    opts?: object,
  ): Promise<[ApiEntry[], unknown, { nextPageToken?: string }]>;
  deleteLog(req: object, opts?: object): Promise<unknown>;
  close(): Promise<void>;
}

let emu: CloudLoggingEmulator;
let client: GapicClient;
const NO_RETRY = { retry: null, timeout: 10_000 };

beforeAll(async () => {
  emu = await startCloudLoggingEmulator();
  client = new v2.LoggingServiceV2Client({
    projectId: PROJECT,
    apiEndpoint: emu.host,
    port: emu.port,
    sslCreds: grpc.credentials.createInsecure(),
  }) as GapicClient;
});

afterEach(() => {
  emu.faults.clear();
  emu.store.clear();
});

afterAll(async () => {
  await client?.close();
  await emu?.close();
});

const ts = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

function entry(text: string, labels: Record<string, string>, ms = Date.now(), insertId?: string) {
  return {
    logName: LOG,
    resource: { type: 'global', labels: {} },
    textPayload: text,
    labels,
    timestamp: ts(ms),
    ...(insertId ? { insertId } : {}),
  };
}

async function list(filter: string, extra: object = {}) {
  const [entries, , response] = await client.listLogEntries(
    { resourceNames: [`projects/${PROJECT}`], filter, orderBy: 'timestamp asc', ...extra },
    { autoPaginate: false, ...NO_RETRY },
  );
  return { entries, next: response?.nextPageToken ?? '' };
}

describe('Cloud Logging emulator over gRPC with the official SDK', () => {
  it('stores what Log.write sends and returns it through Log.getEntries', async () => {
    const logging = sdkLogging(emu, PROJECT);
    const log = logging.log('airflow');
    await log.write(
      log.entry(
        { resource: { type: 'global' }, labels: { dag_id: 'd', try_number: '1' } },
        'hello',
      ),
    );
    const [entries] = await log.getEntries({ filter: 'labels.dag_id="d"', autoPaginate: false });
    expect(entries.map((e) => e.data)).toEqual(['hello']);
    expect(entries[0]!.metadata.labels).toEqual({ dag_id: 'd', try_number: '1' });
    // The SDK's first write in a process carries an extra diagnostic entry without labels.
    const all = emu.store.all(LOG);
    expect(
      all.some((e) => e.jsonPayload && 'logging.googleapis.com/diagnostic' in e.jsonPayload),
    ).toBe(true);
  });

  it('filters by labels, resource type, logName and timestamp, in timestamp order', async () => {
    const t0 = Date.UTC(2024, 0, 1);
    await client.writeLogEntries(
      {
        entries: [
          entry('b', { dag_id: 'etl', task_id: 'load' }, t0 + 2000),
          entry('a', { dag_id: 'etl', task_id: 'load' }, t0 + 1000),
          entry('c', { dag_id: 'etl', task_id: 'other' }, t0 + 3000),
          entry('d', { dag_id: 'etl.x', task_id: 'load' }, t0 + 4000),
        ],
      },
      NO_RETRY,
    );
    const airflowStyle = [
      'resource.type="global"',
      `logName="${LOG}"`,
      'labels.dag_id="etl"',
      'labels."task_id"="load"',
    ].join('\n');
    expect((await list(airflowStyle)).entries.map((e) => e.textPayload)).toEqual(['a', 'b']);
    expect(
      (await list('labels.dag_id="etl" AND timestamp >= "2024-01-01T00:00:02Z"')).entries.map(
        (e) => e.textPayload,
      ),
    ).toEqual(['b', 'c']);
    expect(
      (
        await list('labels.task_id="other" OR (labels.dag_id="etl.x" AND NOT labels.task_id="x")')
      ).entries.map((e) => e.textPayload),
    ).toEqual(['c', 'd']);
    expect(
      (await list('labels.dag_id="etl"', { orderBy: 'timestamp desc' })).entries.map(
        (e) => e.textPayload,
      ),
    ).toEqual(['c', 'b', 'a']);
  });

  it("evaluates Airflow's filter: one condition a line, resource labels, quoted keys and escaped values", async () => {
    const t0 = Date.UTC(2024, 0, 1);
    const resource = { type: 'k8s_container', labels: { cluster_name: 'c1', 'k.with.dot': 'x' } };
    const labels = { task_id: 't', dag_id: 'd', logical_date: '2024-01-01T00:00:00+00:00' };
    await client.writeLogEntries(
      {
        entries: [
          { ...entry('kept', { ...labels, 'a.b': 'say "hi" \\ there' }, t0), resource },
          { ...entry('other cluster', labels, t0 + 1), resource: { ...resource, labels: {} } },
          { ...entry('other value', { ...labels, 'a.b': 'say hi' }, t0 + 2), resource },
        ],
      },
      NO_RETRY,
    );
    // stackdriver_task_handler.py prepare_log_filter, as Airflow builds it for these labels.
    const filter = [
      'resource.type="k8s_container"',
      `logName="${LOG}"`,
      'resource.labels.cluster_name="c1"',
      'resource.labels."k.with.dot"="x"',
      'labels.task_id="t"',
      'labels.dag_id="d"',
      'labels.logical_date="2024-01-01T00:00:00+00:00"',
      'labels."a.b"="say \\"hi\\" \\\\ there"',
    ].join('\n');
    expect((await list(filter)).entries.map((e) => e.textPayload)).toEqual(['kept']);
  });

  it('tests that a field exists with FIELD:*, and its absence with NOT', async () => {
    const t0 = Date.UTC(2024, 0, 1);
    await client.writeLogEntries(
      {
        entries: [
          entry('with', { dag_id: 'exists', run_id: 'r' }, t0),
          entry('without', { dag_id: 'exists' }, t0 + 1),
          entry('star', { dag_id: 'exists', run_id: '*' }, t0 + 2),
        ],
      },
      NO_RETRY,
    );
    const texts = async (filter: string) =>
      (await list(`labels.dag_id="exists" AND ${filter}`)).entries.map((e) => e.textPayload);
    expect(await texts('labels.run_id:*')).toEqual(['with', 'star']);
    expect(await texts('NOT labels.run_id:*')).toEqual(['without']);
    // Quoted, the star is text to look for.
    expect(await texts('labels.run_id:"*"')).toEqual(['star']);
  });

  it('pages with nextPageToken until every matching entry was returned once', async () => {
    const t0 = Date.now() - 60_000;
    await client.writeLogEntries(
      { entries: Array.from({ length: 7 }, (_, i) => entry(`line ${i}`, { k: 'v' }, t0 + i)) },
      NO_RETRY,
    );
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await list('labels.k="v"', { pageSize: 3, pageToken: token });
      seen.push(...page.entries.map((e) => e.textPayload!));
      token = page.next;
      pages++;
    } while (token);
    expect(seen).toEqual(Array.from({ length: 7 }, (_, i) => `line ${i}`));
    expect(pages).toBe(3);
  });

  it('rejects a page size over 1000 and a malformed filter with INVALID_ARGUMENT', async () => {
    await expect(list('labels.k="v"', { pageSize: 1001 })).rejects.toMatchObject({ code: 3 });
    await expect(list('labels.k="v" AND (')).rejects.toMatchObject({ code: 3 });
  });

  it('stores an entry once when the same insertId and timestamp arrive twice', async () => {
    const t = Date.now() - 1000;
    const e = entry('once', { k: 'dup' }, t, 'id-1');
    await client.writeLogEntries({ entries: [e] }, NO_RETRY);
    await client.writeLogEntries(
      { entries: [e, entry('other ts', { k: 'dup' }, t + 1, 'id-1')] },
      NO_RETRY,
    );
    expect((await list('labels.k="dup"')).entries.map((x) => x.textPayload)).toEqual([
      'once',
      'other ts',
    ]);
  });

  it("rejects an entry over 256 KiB with Google's message and writes nothing of the request", async () => {
    const err = await client
      .writeLogEntries(
        { entries: [entry('small', { k: 'big' }), entry('x'.repeat(300 * 1024), { k: 'big' })] },
        NO_RETRY,
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 3 });
    expect(String((err as Error).message)).toMatch(
      /Log entry with size 300\.\dK exceeds maximum size of 256\.0K/,
    );
    expect(emu.store.size).toBe(0);
  });

  it('writes the valid entries of a partialSuccess request and still reports the bad one', async () => {
    const err = await client
      .writeLogEntries(
        {
          partialSuccess: true,
          entries: [entry('kept', { k: 'p' }), entry('x'.repeat(300 * 1024), { k: 'p' })],
        },
        NO_RETRY,
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 3 });
    expect((await list('labels.k="p"')).entries.map((e) => e.textPayload)).toEqual(['kept']);
  });

  it('rejects a request over 10 MB with INVALID_ARGUMENT', async () => {
    const entries = Array.from({ length: 50 }, (_, i) =>
      entry('y'.repeat(220 * 1024), { i: `${i}` }),
    );
    const err = await client.writeLogEntries({ entries }, NO_RETRY).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 3 });
    expect(String((err as Error).message)).toContain(
      'Request payload size exceeds the limit: 10485760 bytes.',
    );
  });

  it('rejects a timestamp more than one day in the future', async () => {
    const err = await client
      .writeLogEntries({ entries: [entry('future', {}, Date.now() + 25 * 3600_000)] }, NO_RETRY)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 3 });
  });

  it('deletes a whole log with DeleteLog', async () => {
    await client.writeLogEntries({ entries: [entry('gone', { k: 'del' })] }, NO_RETRY);
    await client.deleteLog({ logName: LOG }, NO_RETRY);
    expect(emu.store.size).toBe(0);
    await expect(client.deleteLog({ logName: LOG }, NO_RETRY)).rejects.toMatchObject({ code: 5 });
  });

  it('fails calls with the gRPC codes of the injected faults', async () => {
    const cases: [string, number][] = [
      ['503', 14],
      ['429', 8],
      ['500', 13],
      ['408', 4],
    ];
    for (const [status, code] of cases) {
      emu.faults.add({ action: { status: Number(status) as 503 }, times: 1 });
      await expect(
        client.writeLogEntries({ entries: [entry('f', {})] }, NO_RETRY),
      ).rejects.toMatchObject({ code });
    }
    expect(emu.store.size).toBe(0);
  });

  it('applies a write whose answer is lost, then fails the call with UNAVAILABLE', async () => {
    emu.faults.add({
      match: { method: 'WriteLogEntries' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await expect(
      client.writeLogEntries({ entries: [entry('applied', { k: 'lost' })] }, NO_RETRY),
    ).rejects.toMatchObject({ code: 14 });
    expect((await list('labels.k="lost"')).entries.map((e) => e.textPayload)).toEqual(['applied']);
    expect(emu.requestLog.at(-2)).toMatchObject({
      method: 'WriteLogEntries',
      fault: 'resetAfterCommit',
    });
  });
});

describe('Cloud Logging emulator over REST with the official SDK', () => {
  function restClient(): GapicClient {
    return new v2.LoggingServiceV2Client({
      projectId: PROJECT,
      apiEndpoint: emu.host,
      port: emu.restPort,
      protocol: 'http',
      fallback: 'rest',
      authClient: new PassThroughClient(),
    }) as GapicClient;
  }

  it('writes and lists entries, severity and timestamps included', async () => {
    const rest = restClient();
    try {
      const t = Date.UTC(2024, 5, 1, 12, 0, 0, 123);
      await rest.writeLogEntries(
        { entries: [{ ...entry('via rest', { k: 'rest' }, t), severity: 'ERROR' }] },
        NO_RETRY,
      );
      expect(emu.store.all(LOG)[0]).toMatchObject({ severity: 500, textPayload: 'via rest' });
      const [entries] = await rest.listLogEntries(
        { resourceNames: [`projects/${PROJECT}`], filter: 'labels.k="rest" AND severity>=WARNING' },
        { autoPaginate: false, ...NO_RETRY },
      );
      expect(entries.map((e) => e.textPayload)).toEqual(['via rest']);
      expect(
        Number(entries[0]!.timestamp!.seconds) * 1000 + entries[0]!.timestamp!.nanos! / 1e6,
      ).toBe(t);
    } finally {
      await rest.close();
    }
  });

  it('answers limit errors as HTTP 400 that the SDK maps to INVALID_ARGUMENT', async () => {
    const rest = restClient();
    try {
      const err = await rest
        .writeLogEntries({ entries: [entry('z'.repeat(300 * 1024), {})] }, NO_RETRY)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 3 });
    } finally {
      await rest.close();
    }
  });
});
