import http from 'node:http';
import { startHttpServer } from './shared/http-server.js';
import { mulberry32 } from './shared/prng.js';

/** What the proxy does to a request it decides to fail. */
export type FaultKind =
  /** Answer 500 InternalError / 503 SlowDown without forwarding: nothing happened upstream. */
  | '500'
  | '503'
  /** Drop the connection without forwarding: nothing happened upstream. */
  | 'reset-before'
  /**
   * Forward, let the upstream do the work, then drop the connection instead of answering: the
   * client cannot know the request succeeded (the "uncertain failure" every writer must survive).
   */
  | 'reset-after';

export interface FaultProxyOptions {
  /** Upstream base URL, e.g. s3rver's `http://127.0.0.1:PORT`. */
  target: string;
  /** Share of requests to fail, 0..1. */
  probability: number;
  kinds?: FaultKind[];
  seed?: number;
}

export interface FaultProxy {
  url: string;
  /** Change the failure rate on the fly (0 turns faults off). */
  setProbability(p: number): void;
  stats: { requests: number; failed: Record<FaultKind, number> };
  close(): Promise<void>;
}

/**
 * A reverse proxy for HTTP APIs that fails a seeded, random share of requests in the ways real
 * networks and services do. Bodies are streamed both ways (never buffered), so it can sit in
 * front of large uploads. Used for fault tests against s3rver, which cannot inject faults itself.
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const kinds = options.kinds ?? ['500', '503', 'reset-before', 'reset-after'];
  const random = mulberry32(options.seed ?? 1);
  let probability = options.probability;
  const stats = {
    requests: 0,
    failed: { '500': 0, '503': 0, 'reset-before': 0, 'reset-after': 0 } as Record<
      FaultKind,
      number
    >,
  };
  const agent = new http.Agent({ keepAlive: true });

  const server = await startHttpServer((req, res) => {
    stats.requests++;
    const fault = random() < probability ? kinds[Math.floor(random() * kinds.length)]! : undefined;
    if (fault) stats.failed[fault]++;
    if (fault === 'reset-before') {
      req.socket.destroy();
      return;
    }
    if (fault === '500' || fault === '503') {
      // The request body is drained so the client sees the answer, not a broken pipe.
      req.resume();
      const code = fault === '503' ? 'SlowDown' : 'InternalError';
      res.writeHead(Number(fault), { 'content-type': 'application/xml', connection: 'close' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by fault proxy</Message><RequestId>fault</RequestId></Error>`,
      );
      return;
    }
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
        agent,
      },
      (up) => {
        if (fault === 'reset-after') {
          up.resume();
          up.once('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  return {
    url: server.url,
    setProbability(p) {
      probability = p;
    },
    stats,
    async close() {
      await server.close();
      agent.destroy();
    },
  };
}
