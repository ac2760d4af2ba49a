/**
 * deploy/kubernetes/: every manifest parses, validates against the JSON schemas of the
 * Kubernetes API (the `kubernetes-models` package ships them compiled, so nothing is fetched at
 * run time), and what refers to something else finds it: selectors, ports of probes and
 * Services, Secret keys behind `_cmd` settings, the ConfigMap behind TASKLOG_CONFIG, and every
 * `TASKLOG__…` variable is a setting tasklog's config schema declares.
 *
 * Those schemas check types, required fields and enums, but accept unknown fields (unlike
 * `kubectl apply --validate=strict`); the cross-reference checks below read the fields that
 * matter by name, so a misspelt one among those fails here too. No cluster runs these here.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, settingsReference } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = join(ROOT, 'deploy', 'kubernetes');

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below.
type Manifest = any;
type Labels = Record<string, string>;

interface PodTemplate {
  owner: Manifest;
  labels: Labels;
  spec: Manifest;
  /** Containers and init containers (native sidecars are init containers). */
  containers: Manifest[];
}

let manifests: { file: string; doc: Manifest }[];
let templates: PodTemplate[];
let work: string;

const byKind = (kind: string) => manifests.map((m) => m.doc).filter((d) => d.kind === kind);
const named = (kind: string, name: string) => byKind(kind).find((d) => d.metadata.name === name);
/** Whether `selector` (matchLabels, or a Service's plain map) selects pods labelled `labels`. */
const selects = (selector: Labels, labels: Labels) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
/** tasklog's containers: those running the image built by the Dockerfile. */
const tasklogContainers = () =>
  templates.flatMap((t) => t.containers.filter((c) => c.image.startsWith('tasklog:')));
const role = (c: Manifest) => c.args?.[0] as string;
/** `TASKLOG__SECTION__KEY` → `section.key`. */
const settingOf = (env: string) => env.slice('TASKLOG__'.length).toLowerCase().replace('__', '.');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tasklog-k8s-'));
  manifests = [];
  for (const file of (await readdir(DIR)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(DIR, file), 'utf8'))) {
      expect(doc.errors, file).toEqual([]);
      manifests.push({ file, doc: doc.toJS() });
    }
  }
  templates = manifests
    .map((m) => m.doc)
    .filter((d) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(d.kind))
    .map((d) => ({
      owner: d,
      labels: d.spec.template.metadata.labels,
      spec: d.spec.template.spec,
      containers: [
        ...(d.spec.template.spec.initContainers ?? []),
        ...d.spec.template.spec.containers,
      ],
    }));
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the Kubernetes manifests', () => {
  it('are the proxy, the agent (DaemonSet and sidecar), their config and policies', () => {
    const kinds = manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort();
    expect(kinds).toEqual([
      'ConfigMap/tasklog-config',
      'DaemonSet/tasklog-agent',
      'Deployment/airflow-worker',
      'Deployment/tasklog-proxy',
      'Namespace/tasklog',
      'NetworkPolicy/airflow-worker-serve-logs',
      'NetworkPolicy/tasklog-agent-from-proxy-only',
      'PodDisruptionBudget/tasklog-proxy',
      'Secret/tasklog-secrets',
      'Service/tasklog-proxy',
    ]);
  });

  it('validate against the Kubernetes API schemas', async () => {
    for (const { file, doc } of manifests) {
      const specifier = `kubernetes-models/${doc.apiVersion}/${doc.kind}`;
      const module = await import(/* @vite-ignore */ specifier);
      const Model = module[doc.kind] as new (d: unknown) => { validate(): void };
      expect(
        () => new Model(doc).validate(),
        `${file}: ${doc.kind}/${doc.metadata.name}`,
      ).not.toThrow();
    }
  });

  it('put every namespaced object into the tasklog namespace', () => {
    for (const { doc } of manifests.filter((m) => m.doc.kind !== 'Namespace')) {
      expect(doc.metadata.namespace, `${doc.kind}/${doc.metadata.name}`).toBe('tasklog');
    }
  });

  it('select their own pod templates', () => {
    for (const t of templates) {
      expect(selects(t.owner.spec.selector.matchLabels, t.labels), t.owner.metadata.name).toBe(
        true,
      );
    }
  });

  it('point the Service and the PodDisruptionBudget at the proxy pods only', () => {
    const service = named('Service', 'tasklog-proxy');
    const pdb = named('PodDisruptionBudget', 'tasklog-proxy');
    const owners = (selector: Labels) =>
      templates.filter((t) => selects(selector, t.labels)).map((t) => t.owner.metadata.name);
    expect(owners(service.spec.selector)).toEqual(['tasklog-proxy']);
    expect(owners(pdb.spec.selector.matchLabels)).toEqual(['tasklog-proxy']);
    const proxy = tasklogContainers().find((c) => role(c) === 'serve');
    const target = service.spec.ports[0].targetPort;
    expect(proxy.ports.map((p: Manifest) => p.name)).toContain(target);
  });

  it('probe /health/ready for readiness and /health/live for liveness on a declared port', () => {
    const containers = tasklogContainers();
    expect(containers.map(role).sort()).toEqual(['agent', 'agent', 'serve']);
    for (const c of containers) {
      expect(c.readinessProbe.httpGet.path, c.name).toBe('/health/ready');
      expect(c.livenessProbe.httpGet.path, c.name).toBe('/health/live');
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean)) {
        const port = probe.httpGet.port;
        const declared = c.ports.some((p: Manifest) => p.name === port || p.containerPort === port);
        expect(declared, `${c.name}: probe port ${port}`).toBe(true);
      }
    }
  });

  it('listen where the ConfigMap says: server.port for the proxy, agent.port for agents', () => {
    const toml = named('ConfigMap', 'tasklog-config').data['tasklog.toml'] as string;
    const port = (section: string) =>
      Number(new RegExp(`\\[${section}\\][^[]*?\\nport = (\\d+)`).exec(toml)?.[1]);
    for (const c of tasklogContainers()) {
      expect(c.ports[0].containerPort).toBe(port(role(c) === 'serve' ? 'server' : 'agent'));
    }
  });

  it('run tasklog non-root with a read-only root filesystem, TASKLOG_HOME and /tmp writable', () => {
    for (const t of templates) {
      for (const c of t.containers.filter((c) => c.image.startsWith('tasklog:'))) {
        const nonRoot = c.securityContext?.runAsNonRoot ?? t.spec.securityContext?.runAsNonRoot;
        expect(nonRoot, c.name).toBe(true);
        expect(c.securityContext).toMatchObject({
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.resources.requests, c.name).toMatchObject({ cpu: expect.any(String) });
        expect(c.resources.limits, c.name).toMatchObject({ memory: expect.any(String) });
        const mounts = c.volumeMounts.map((m: Manifest) => m.mountPath);
        expect(mounts).toEqual(expect.arrayContaining(['/var/lib/tasklog', '/tmp']));
        for (const m of c.volumeMounts) {
          const volume = t.spec.volumes.find((v: Manifest) => v.name === m.name);
          expect(volume, `${c.name}: volume ${m.name}`).toBeDefined();
        }
      }
    }
  });

  it('let only the proxy reach the agents', () => {
    const policy = named('NetworkPolicy', 'tasklog-agent-from-proxy-only');
    const selected = templates.filter((t) =>
      selects(policy.spec.podSelector.matchLabels, t.labels),
    );
    const withAgent = templates.filter((t) => t.containers.some((c) => role(c) === 'agent'));
    expect(selected.map((t) => t.owner.metadata.name).sort()).toEqual(
      withAgent.map((t) => t.owner.metadata.name).sort(),
    );
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toHaveLength(1);
    const [rule] = policy.spec.ingress;
    const sources = templates.filter((t) =>
      rule.from.some((f: Manifest) => selects(f.podSelector.matchLabels, t.labels)),
    );
    expect(sources.map((t) => t.owner.metadata.name)).toEqual(['tasklog-proxy']);
    const agentPorts = new Set(
      tasklogContainers()
        .filter((c) => role(c) === 'agent')
        .map((c) => c.ports[0].containerPort),
    );
    expect(rule.ports.map((p: Manifest) => p.port)).toEqual([...agentPorts]);
  });

  it('read secrets through _cmd settings from files a mounted Secret provides', () => {
    let checked = 0;
    for (const t of templates) {
      for (const c of t.containers.filter((c) => c.image.startsWith('tasklog:'))) {
        for (const e of c.env.filter((e: Manifest) => e.name.endsWith('_CMD'))) {
          const file = /^cat (\/\S+)$/.exec(e.value)?.[1];
          expect(file, e.name).toBeDefined();
          const mount = c.volumeMounts.find((m: Manifest) => file!.startsWith(`${m.mountPath}/`));
          const volume = t.spec.volumes.find((v: Manifest) => v.name === mount?.name);
          expect(volume?.secret, `${c.name}: ${file}`).toBeDefined();
          const secret = named('Secret', volume.secret.secretName);
          expect(secret, volume.secret.secretName).toBeDefined();
          const keys = Object.keys({ ...secret.data, ...secret.stringData });
          const rel = file!.slice(mount.mountPath.length + 1);
          const item = volume.secret.items?.find((i: Manifest) => i.path === rel);
          expect(keys, `${c.name}: ${e.name}`).toContain(item ? item.key : rel);
          checked++;
        }
      }
    }
    // The catalog URL (PostgreSQL's password) and the agent token secret, in three pods.
    expect(checked).toBe(6);
  });

  it('give every Secret and ConfigMap volume a key that exists', () => {
    for (const t of templates) {
      for (const v of t.spec.volumes) {
        const ref = v.secret ?? v.configMap;
        if (!ref) continue;
        const target = v.secret ? named('Secret', ref.secretName) : named('ConfigMap', ref.name);
        expect(target, v.name).toBeDefined();
        const keys = Object.keys({ ...target.data, ...target.stringData });
        for (const item of ref.items ?? []) expect(keys, v.name).toContain(item.key);
      }
    }
  });

  it('name only real settings in TASKLOG__ variables', () => {
    const settings = new Set(settingsReference().map((s) => s.key));
    const names = tasklogContainers().flatMap((c) =>
      c.env.map((e: Manifest) => e.name as string).filter((n: string) => n.startsWith('TASKLOG__')),
    );
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      const key = settingOf(name).replace(/_cmd$/, '');
      expect(settings.has(key), name).toBe(true);
    }
  });

  it("load as a valid configuration: the ConfigMap's tasklog.toml with each container's env", async () => {
    const config = named('ConfigMap', 'tasklog-config');
    for (const c of tasklogContainers()) {
      const configPath = c.env.find((e: Manifest) => e.name === 'TASKLOG_CONFIG').value as string;
      const mount = c.volumeMounts.find((m: Manifest) => configPath.startsWith(`${m.mountPath}/`));
      const key = configPath.slice(mount.mountPath.length + 1);
      const file = join(work, `${c.name}.toml`);
      await writeFile(file, config.data[key]);
      // Values Kubernetes fills in ($(POD_IP)) get a sample; _cmd secrets are checked above.
      const env: NodeJS.ProcessEnv = { TASKLOG_CONFIG: file, TASKLOG_HOME: work };
      for (const e of c.env.filter((e: Manifest) => /^TASKLOG__(?!.*_CMD$)/.test(e.name))) {
        env[e.name] = (e.value as string).replace(/\$\(POD_IP\)/g, '10.1.2.3');
      }
      const loaded = loadConfig({ env });
      expect(loaded.config.store.url).toBe('s3://airflow-logs/tasklog');
      expect(loaded.config.auth.mode).toBe('jwt');
      if (role(c) === 'agent') expect(loaded.config.agent.url).toBe('http://10.1.2.3:8795');
    }
  });

  it('run the image the Dockerfile builds, tagged with the CLI version', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'packages/cli/package.json'), 'utf8'));
    for (const c of tasklogContainers()) expect(c.image).toBe(`tasklog:${version}`);
  });
});
