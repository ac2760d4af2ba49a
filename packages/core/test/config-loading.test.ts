import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AIRFLOW_PATH_TEMPLATE, defaultHome } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import {
  dir,
  expectOneEnvIssue,
  home,
  issuesOf,
  load,
  toml,
  useFolderPerTest,
} from './config-fixture.js';

// Where loadConfig takes each value from: defaults, the file, the environment, commands and flags;
// how it checks and shows them is in config-reporting.test.ts.
useFolderPerTest();

describe('defaults', () => {
  it('derives every default from TASKLOG_HOME', () => {
    const { config, sources } = load();
    expect(config).toEqual({
      core: {
        base_log_folder: join(home, 'logs'),
        path_template: AIRFLOW_PATH_TEMPLATE,
        delete_local_copy: false,
        state_folder: join(home, 'state'),
        sensitive_names: '',
        umask: '027',
      },
      store: {
        url: `file://${home}/archive`,
        compression: 'none',
        flush_interval: 5,
        flush_bytes: 8 * 1024 * 1024,
        read_urls: '',
        retry_max_interval: 10,
        finish_grace: 30,
      },
      s3: {
        force_path_style: false,
        role_session_name: 'tasklog',
        max_attempts: 8,
      },
      gcs: { max_attempts: 8 },
      cloudwatch: { max_attempts: 8 },
      cloud_logging: { resource_type: 'global', transport: 'grpc', max_attempts: 8 },
      elasticsearch: {
        log_id_template: '{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}',
        end_of_log_mark: 'end_of_log',
        message_field: 'message',
        host_field: 'host',
        request_timeout_seconds: 30,
        max_retries: 8,
        bulk_bytes: 5 * 1024 * 1024,
        bulk_count: 10_000,
        max_line_bytes: 16 * 1024 * 1024,
        distribution: 'elasticsearch',
      },
      agent: {
        host: '127.0.0.1',
        port: 8795,
        token_algorithm: 'HS512',
        idle_timeout: 3600,
        heartbeat_interval: 30,
        heartbeat_timeout: 90,
        shutdown_timeout: 10,
        completion: 'marker',
        airflow_clock_grace: 30,
        allowed_urls: '',
        ship_concurrency: 4,
        scan_interval: 2,
      },
      auth: {
        mode: 'none',
        algorithms: 'RS256,ES256,EdDSA',
        clock_tolerance: 30,
        jwks_cache: 300,
        name_claim: 'sub',
        dags_claim: 'tasklog_dags',
        admin_claim: 'tasklog_admin',
        tokens_file: join(home, 'tokens.json'),
      },
      catalog: { url: `sqlite://${home}/catalog.db` },
      server: {
        host: '127.0.0.1',
        port: 8794,
        shutdown_timeout: 10,
        allowed_hosts: '',
        max_connections: 10_000,
        max_followers: 5_000,
        max_followers_per_attempt: 1_000,
        send_timeout: 30,
        search_time_limit: 10,
        ui: true,
      },
      retention: { interval: 3600 },
      logging: { level: 'info' },
    });
    expect(Object.values(sources).every((s) => s.source === 'default')).toBe(true);
    // Only keys named like credentials are secret by default.
    const secret = Object.keys(sources).filter((k) => sources[k]!.secret);
    // Airflow's rule: a name containing password, secret, token, api_key, ... is sensitive.
    expect(secret).toEqual([
      'elasticsearch.password',
      'elasticsearch.api_key',
      'agent.token_algorithm',
      'agent.token_secret',
      'agent.token_secret_file',
      'agent.token_public_key',
      'agent.token_public_key_file',
      'agent.token_private_key',
      'agent.token_private_key_file',
      'agent.airflow_secret_key',
      'auth.secret',
      'auth.tokens_file',
    ]);
  });

  it('uses ~/.tasklog as home when TASKLOG_HOME is not set', () => {
    expect(defaultHome({})).toMatch(/[/\\]\.tasklog$/);
    expect(defaultHome({ TASKLOG_HOME: '/srv/tasklog' })).toBe('/srv/tasklog');
  });

  it('reads no file when neither --config nor TASKLOG_CONFIG is given', () => {
    expect(load().configPath).toBeUndefined();
  });
});

describe('precedence', () => {
  it('a file value overrides the default', () => {
    const path = toml('[server]\nport = 9000\n');
    const loaded = load({ configPath: path });
    expect(loaded.config.server.port).toBe(9000);
    expect(loaded.sources['server.port']).toEqual({ source: `file ${path}`, secret: false });
    expect(loaded.configPath).toBe(path);
  });

  it('TASKLOG_CONFIG names the file when --config is not given', () => {
    const path = toml('[server]\nport = 9000\n');
    expect(load({ env: { TASKLOG_CONFIG: path } }).config.server.port).toBe(9000);
  });

  it('--config wins over TASKLOG_CONFIG', () => {
    const flagFile = toml('[server]\nport = 9001\n', 'flag.toml');
    const envFile = toml('[server]\nport = 9002\n', 'env.toml');
    const loaded = load({ configPath: flagFile, env: { TASKLOG_CONFIG: envFile } });
    expect(loaded.config.server.port).toBe(9001);
  });

  it('an environment variable overrides the file', () => {
    const path = toml('[server]\nport = 9000\n');
    const loaded = load({ configPath: path, env: { TASKLOG__SERVER__PORT: '9100' } });
    expect(loaded.config.server.port).toBe(9100);
    expect(loaded.sources['server.port']?.source).toBe('env TASKLOG__SERVER__PORT');
  });

  it('a flag overrides the environment', () => {
    const path = toml('[server]\nport = 9000\n');
    const loaded = load({
      configPath: path,
      env: { TASKLOG__SERVER__PORT: '9100' },
      flags: { 'server.port': 9200 },
      flagNames: { 'server.port': '--port' },
    });
    expect(loaded.config.server.port).toBe(9200);
    expect(loaded.sources['server.port']?.source).toBe('flag --port');
  });

  it('a flag whose value is undefined is ignored', () => {
    const loaded = load({
      env: { TASKLOG__SERVER__PORT: '9100' },
      flags: { 'server.port': undefined },
    });
    expect(loaded.config.server.port).toBe(9100);
  });
});

describe('environment', () => {
  it('coerces numbers and booleans from strings', () => {
    const { config } = load({
      env: {
        TASKLOG__SERVER__PORT: '8080',
        TASKLOG__SERVER__SHUTDOWN_TIMEOUT: '2.5',
        TASKLOG__CORE__DELETE_LOCAL_COPY: 'true',
      },
    });
    expect(config.server.port).toBe(8080);
    expect(config.server.shutdown_timeout).toBe(2.5);
    expect(config.core.delete_local_copy).toBe(true);
  });

  it.each([
    ['1', true],
    ['0', false],
    ['false', false],
    ['TRUE', true],
  ])('reads the boolean %j as %j', (raw, expected) => {
    const { config } = load({ env: { TASKLOG__CORE__DELETE_LOCAL_COPY: raw } });
    expect(config.core.delete_local_copy).toBe(expected);
  });

  it('ignores variables outside the TASKLOG__ namespace', () => {
    const { config } = load({ env: { TASKLOG_FOO: 'x', OTHER__STORE__URL: 'nonsense' } });
    expect(config.server.port).toBe(8794);
  });

  it('reports an unknown TASKLOG__ variable with the closest known one', () => {
    expectOneEnvIssue(
      { TASKLOG__STORE__URLL: 'file:///x' },
      'store.urll',
      'did you mean store.url (TASKLOG__STORE__URL)?',
    );
  });
});

describe('commands (_cmd)', () => {
  it('takes a file value from a command, without its trailing newline, as a secret', () => {
    const path = toml(`[store]\nurl_cmd = "printf 'file:///x\\\\n'"\n`);
    const loaded = load({ configPath: path });
    expect(loaded.config.store.url).toBe('file:///x');
    expect(loaded.sources['store.url']).toEqual({
      source: `command from file ${path}`,
      secret: true,
    });
  });

  it('removes only one trailing newline', () => {
    const loaded = load({ env: { TASKLOG__SERVER__HOST_CMD: "printf 'h\\n\\n'" } });
    expect(loaded.config.server.host).toBe('h\n');
  });

  it('takes an environment value from a command', () => {
    const loaded = load({ env: { TASKLOG__STORE__URL_CMD: "printf 'file:///from-env\\n'" } });
    expect(loaded.config.store.url).toBe('file:///from-env');
    expect(loaded.sources['store.url']).toEqual({
      source: 'command from env TASKLOG__STORE__URL_CMD',
      secret: true,
    });
  });

  it('a command in a higher layer overrides a plain value in a lower one', () => {
    const path = toml('[store]\nurl = "file:///from-file"\n');
    const loaded = load({ configPath: path, env: { TASKLOG__STORE__URL_CMD: 'echo file:///cmd' } });
    expect(loaded.config.store.url).toBe('file:///cmd');
  });

  it('reports a failing command with its key, source and first stderr line', () => {
    const issues = issuesOf(() =>
      load({
        env: { TASKLOG__STORE__URL_CMD: 'echo "no such secret" >&2; echo more >&2; exit 3' },
      }),
    );
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ key: 'store.url', source: 'env TASKLOG__STORE__URL_CMD' });
    expect(issues[0]?.message).toMatch(/exited with status 3: no such secret$/);
  });

  it('reports a command that runs past its time limit', () => {
    expectOneEnvIssue({ TASKLOG__SERVER__HOST_CMD: 'exec sleep 30' }, 'server.host', 'timed out', {
      commandTimeoutMs: 200,
    });
  });

  it('rejects a key given both directly and as a command in the same layer', () => {
    const path = toml('[store]\nurl = "file:///a"\nurl_cmd = "echo file:///b"\n');
    const issues = issuesOf(() => load({ configPath: path }));
    expect(issues).toEqual([
      { key: 'store.url', source: expect.stringContaining(path), message: expect.any(String) },
    ]);
  });

  it('runs a file command in the file’s folder', () => {
    writeFileSync(join(dir, 'secret-url'), 'file:///from-secret\n');
    const path = toml('[store]\nurl_cmd = "cat ./secret-url"\n');
    expect(load({ configPath: path, cwd: '/' }).config.store.url).toBe('file:///from-secret');
  });
});

describe('file', () => {
  it('reports a missing named file', () => {
    const path = join(dir, 'nope.toml');
    const issues = issuesOf(() => load({ configPath: path }));
    expect(issues).toEqual([
      { key: 'config', source: 'flag --config', message: `cannot read ${path}: no such file` },
    ]);
  });

  it('reports a TOML syntax error with the file and line', () => {
    const path = toml('[server]\nport = 9000\nhost = \n');
    const issues = issuesOf(() => load({ configPath: path }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.source).toBe(`file ${path}`);
    expect(issues[0]?.message).toMatch(/invalid TOML in .*tasklog\.toml at line 3/);
  });

  it('reports an unknown key with the closest known one', () => {
    const path = toml('[core]\nbse_log_folder = "/x"\n');
    expect(issuesOf(() => load({ configPath: path }))).toEqual([
      {
        key: 'core.bse_log_folder',
        source: `file ${path}`,
        message: 'unknown key core.bse_log_folder; did you mean core.base_log_folder?',
      },
    ]);
  });

  it('reports an unknown section', () => {
    const path = toml('[stor]\nurl = "file:///x"\n');
    expect(issuesOf(() => load({ configPath: path }))).toEqual([
      { key: 'stor', source: `file ${path}`, message: 'unknown section stor; did you mean store?' },
    ]);
  });

  it('resolves a relative folder from the file against the file’s folder', () => {
    const path = toml('[core]\nbase_log_folder = "logs"\n', 'conf.toml');
    const { config } = load({ configPath: path, cwd: '/' });
    expect(config.core.base_log_folder).toBe(join(dir, 'logs'));
  });

  it('resolves a relative folder from the environment or a flag against cwd', () => {
    const { config } = load({
      cwd: '/work/here',
      env: { TASKLOG__CORE__BASE_LOG_FOLDER: 'logs' },
      flags: { 'core.state_folder': '../state' },
    });
    expect(config.core.base_log_folder).toBe('/work/here/logs');
    expect(config.core.state_folder).toBe('/work/state');
  });
});
