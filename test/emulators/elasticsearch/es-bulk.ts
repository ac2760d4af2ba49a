/**
 * `_bulk`: NDJSON action and source lines. A malformed action line fails the whole request;
 * each item then succeeds or fails on its own (`errors: true` with a per-item status), and a
 * share of items can be rejected with 429 as an overloaded cluster does (see EsCluster).
 */
import { type EsCluster, randomId, shardsInfo } from './es-cluster.js';
import { EsApiError, esErrors } from './es-errors.js';
import { type Ctx, readEsBody, send } from './es-http.js';
import type { EsIndex } from './es-index.js';
import { parseJson } from './es-json.js';

export async function bulk(
  ctx: Ctx,
  cluster: EsCluster,
  pathIndex: string | undefined,
): Promise<void> {
  const body = (await readEsBody(ctx)).toString('utf8');
  if (body.length === 0) {
    throw new EsApiError(
      400,
      'action_request_validation_exception',
      'Validation Failed: 1: no requests added;',
    );
  }
  if (!body.endsWith('\n')) {
    throw esErrors.illegalArgument('The bulk request must be terminated by a newline [\\n]');
  }
  const lines = body.split('\n');
  lines.pop();
  // Parse everything first: a malformed action line fails the whole request, as in ES.
  type Op = {
    action: 'index' | 'create' | 'delete';
    index: string;
    id?: string;
    source?: unknown;
  };
  const ops: Op[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    let action: Record<string, unknown>;
    try {
      action = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw esErrors.illegalArgument(
        `Malformed action/metadata line [${i + 1}], expected START_OBJECT`,
      );
    }
    const kinds = Object.keys(action ?? {});
    if (kinds.length !== 1) {
      throw esErrors.illegalArgument(
        `Malformed action/metadata line [${i + 1}], expected a simple value for field [${kinds[1] ?? ''}]`,
      );
    }
    const kind = kinds[0]!;
    if (kind === 'update') {
      throw esErrors.illegalArgument('the emulator does not support bulk [update] actions');
    }
    if (kind !== 'index' && kind !== 'create' && kind !== 'delete') {
      throw esErrors.illegalArgument(
        `Action/metadata line [${i + 1}] contains an unknown parameter [${kind}]`,
      );
    }
    const meta = (action[kind] ?? {}) as { _index?: string; _id?: string };
    const index = meta._index ?? pathIndex;
    if (!index) {
      throw new EsApiError(
        400,
        'action_request_validation_exception',
        'Validation Failed: 1: index is missing;',
      );
    }
    const op: Op = {
      action: kind,
      index,
      ...(meta._id !== undefined ? { id: String(meta._id) } : {}),
    };
    if (kind === 'delete') {
      if (op.id === undefined) {
        throw new EsApiError(
          400,
          'action_request_validation_exception',
          'Validation Failed: 1: id is missing;',
        );
      }
    } else {
      i++;
      if (i >= lines.length)
        throw esErrors.illegalArgument(`Validation Failed: 1: source is missing for line [${i}];`);
      op.source = lines[i];
    }
    ops.push(op);
  }

  const touched = new Set<EsIndex>();
  let errors = false;
  let rejected = 0;
  const items = ops.map((op) => {
    const id = op.id ?? randomId();
    const head = { _index: op.index, _id: id };
    const fail = (err: EsApiError) => {
      errors = true;
      return { [op.action]: { ...head, status: err.status, error: err.body() } };
    };
    const itemFaults = cluster.itemFaults;
    if (itemFaults && itemFaults.random() < itemFaults.probability) {
      rejected++;
      return fail(esErrors.rejected());
    }
    try {
      const index =
        op.action === 'delete' ? cluster.indices.get(op.index) : cluster.writeIndex(op.index);
      if (!index) throw esErrors.indexNotFound(op.index);
      let result: ReturnType<EsIndex['put']>;
      if (op.action === 'delete') result = index.delete(id);
      else {
        let source: unknown;
        try {
          source = parseJson(op.source as string);
        } catch (err) {
          throw esErrors.documentParsing(`failed to parse: ${(err as Error).message}`);
        }
        if (typeof source !== 'object' || source === null || Array.isArray(source)) {
          throw esErrors.documentParsing('failed to parse, document is empty');
        }
        result = index.put(
          id,
          source as Record<string, unknown>,
          op.action === 'create' ? 'create' : 'index',
        );
      }
      touched.add(index);
      return {
        [op.action]: {
          ...head,
          _version: result.version,
          result: result.result,
          _shards: shardsInfo(),
          _seq_no: result.seqNo,
          _primary_term: 1,
          status: result.status,
        },
      };
    } catch (err) {
      if (err instanceof EsApiError) return fail(err);
      throw err;
    }
  });
  ctx.rejectedItems = rejected;
  await cluster.honourRefresh(ctx.query, touched);
  send(ctx, 200, { errors, took: 1, items });
}
