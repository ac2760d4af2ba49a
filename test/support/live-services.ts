import { afterAll, beforeAll } from 'vitest';
import { startService } from './cli.js';
import type { TasklogHome } from './tasklog-home.js';

type Service = Awaited<ReturnType<typeof startService>>;

/** An agent and a proxy on `home`, started before the block's tests and stopped after them. */
export function useAgentAndProxy(home: TasklogHome): {
  readonly agent: Service;
  readonly proxy: Service;
} {
  let agent: Service | undefined;
  let proxy: Service | undefined;
  beforeAll(async () => {
    agent = await startService('agent', [], home.env);
    proxy = await startService('serve', [], home.env);
  });
  afterAll(async () => {
    await proxy?.stop();
    await agent?.stop();
  });
  const started = (s: Service | undefined) => {
    if (!s) throw new Error('the agent and the proxy start in a beforeAll');
    return s;
  };
  return {
    get agent() {
      return started(agent);
    },
    get proxy() {
      return started(proxy);
    },
  };
}

/** Waits until the catalog, read through the proxy, says an agent runs the attempt. */
export async function untilRunning(
  proxyUrl: string,
  dagId: string,
  taskId?: string,
): Promise<void> {
  const query = new URLSearchParams({ dagId, ...(taskId ? { taskId } : {}) });
  for (let i = 0; i < 300; i++) {
    const res = await fetch(`${proxyUrl}/api/v1/attempts?${query}`);
    const { attempts } = (await res.json()) as {
      attempts: Array<{ state: string; agentUrl: string | null }>;
    };
    if (attempts[0]?.state === 'running' && attempts[0].agentUrl) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no agent took up the running attempt of ${dagId} ${taskId ?? ''} within 30 s`);
}
