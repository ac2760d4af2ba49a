import { describeConfig } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { expectOneEnvIssue, issuesOf, load, toml, useFolderPerTest } from './config-fixture.js';

// What a user is told: the keys and sources describeConfig lists, masked where secret, and the
// issues loadConfig reports for values that are not valid.
useFolderPerTest();

describe('describeConfig', () => {
  it('lists every key with its value and source', () => {
    const rows = describeConfig(load({ env: { TASKLOG__SERVER__PORT: '9000' } }));
    expect(rows.map((r) => r.key)).toEqual([
      'core.base_log_folder',
      'core.path_template',
      'core.delete_local_copy',
      'core.state_folder',
      'core.sensitive_names',
      'core.umask',
      'store.url',
      'store.compression',
      'store.flush_interval',
      'store.flush_bytes',
      'store.read_urls',
      'store.retry_max_interval',
      'store.finish_grace',
      's3.region',
      's3.endpoint',
      's3.force_path_style',
      's3.role_arn',
      's3.role_session_name',
      's3.external_id',
      's3.sse',
      's3.kms_key_id',
      's3.storage_class',
      's3.checksum_algorithm',
      's3.max_attempts',
      'gcs.project_id',
      'gcs.api_endpoint',
      'gcs.impersonation_chain',
      'gcs.max_attempts',
      'cloudwatch.region',
      'cloudwatch.endpoint',
      'cloudwatch.max_attempts',
      'elasticsearch.log_id_template',
      'elasticsearch.end_of_log_mark',
      'elasticsearch.message_field',
      'elasticsearch.host_field',
      'elasticsearch.username',
      'elasticsearch.password',
      'elasticsearch.api_key',
      'elasticsearch.ca_file',
      'elasticsearch.request_timeout_seconds',
      'elasticsearch.max_retries',
      'elasticsearch.bulk_bytes',
      'elasticsearch.bulk_count',
      'elasticsearch.max_line_bytes',
      'elasticsearch.distribution',
      'cloud_logging.project_id',
      'cloud_logging.resource_type',
      'cloud_logging.resource_labels',
      'cloud_logging.api_endpoint',
      'cloud_logging.transport',
      'cloud_logging.max_attempts',
      'agent.host',
      'agent.port',
      'agent.metrics_port',
      'agent.url',
      'agent.token_algorithm',
      'agent.token_secret',
      'agent.token_secret_file',
      'agent.token_public_key',
      'agent.token_public_key_file',
      'agent.token_private_key',
      'agent.token_private_key_file',
      'agent.tls_cert',
      'agent.tls_key',
      'agent.idle_timeout',
      'agent.heartbeat_interval',
      'agent.heartbeat_timeout',
      'agent.shutdown_timeout',
      'agent.completion',
      'agent.airflow_db_url',
      'agent.airflow_secret_key',
      'agent.airflow_clock_grace',
      'agent.allowed_urls',
      'agent.ship_concurrency',
      'agent.scan_interval',
      'auth.mode',
      'auth.jwks_url',
      'auth.public_key',
      'auth.secret',
      'auth.issuer',
      'auth.audience',
      'auth.algorithms',
      'auth.clock_tolerance',
      'auth.jwks_cache',
      'auth.name_claim',
      'auth.dags_claim',
      'auth.admin_claim',
      'auth.tokens_file',
      'catalog.url',
      'server.host',
      'server.port',
      'server.shutdown_timeout',
      'server.allowed_hosts',
      'server.max_connections',
      'server.max_followers',
      'server.max_followers_per_attempt',
      'server.send_timeout',
      'server.search_time_limit',
      'server.ui',
      'retention.keep_days',
      'retention.interval',
      'logging.level',
    ]);
    expect(rows.find((r) => r.key === 'server.port')).toEqual({
      key: 'server.port',
      value: 9000,
      source: 'env TASKLOG__SERVER__PORT',
    });
  });

  it('masks a value that came from a command', () => {
    const rows = describeConfig(load({ env: { TASKLOG__STORE__URL_CMD: 'echo s3://bucket/p' } }));
    expect(rows.find((r) => r.key === 'store.url')).toEqual({
      key: 'store.url',
      value: '***',
      source: 'command from env TASKLOG__STORE__URL_CMD',
    });
  });

  it('masks the password of a URL with userinfo', () => {
    const loaded = load({
      env: { TASKLOG__CATALOG__URL: 'postgres://u:p%40ss@db.example:5432/tl' },
    });
    const row = describeConfig(loaded).find((r) => r.key === 'catalog.url');
    expect(row?.value).toBe('postgres://u:***@db.example:5432/tl');
  });

  it('masks any key whose name names a credential', () => {
    const loaded = load();
    const withToken = {
      ...loaded,
      config: { ...loaded.config, store: { ...loaded.config.store, api_token: 't' } },
    };
    // A key like store.api_token is masked by its name even when it came from no command.
    const rows = describeConfig(withToken as typeof loaded);
    expect(rows.find((r) => r.key === 'store.api_token')).toEqual({
      key: 'store.api_token',
      value: '***',
      source: 'default',
    });
  });

  it('does not reveal a command’s value in an error message', () => {
    const issues = issuesOf(() => load({ env: { TASKLOG__SERVER__PORT_CMD: 'echo hunter2' } }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.message).not.toContain('hunter2');
  });
});

describe('validation', () => {
  it('collects every invalid value into one error, each with key, source and expectation', () => {
    const path = toml('[logging]\nlevel = "loud"\n');
    const issues = issuesOf(() =>
      load({ configPath: path, env: { TASKLOG__SERVER__PORT: 'abc' } }),
    );
    expect(issues).toEqual([
      {
        key: 'server.port',
        source: 'env TASKLOG__SERVER__PORT',
        message: 'expected a port number 0-65535 (0 = any free port), got "abc"',
      },
      {
        key: 'logging.level',
        source: `file ${path}`,
        message: 'expected one of trace, debug, info, warn, error, fatal, silent, got "loud"',
      },
    ]);
  });

  it.each([-1, 65536, 1.5])('rejects the port %j', (port) => {
    const issues = issuesOf(() => load({ flags: { 'server.port': port } }));
    expect(issues[0]).toMatchObject({ key: 'server.port', source: 'flag server.port' });
  });

  it('accepts port 0 (any free port)', () => {
    expect(load({ flags: { 'server.port': '0' } }).config.server.port).toBe(0);
  });

  it('rejects a negative shutdown timeout', () => {
    const issues = issuesOf(() => load({ env: { TASKLOG__SERVER__SHUTDOWN_TIMEOUT: '-1' } }));
    expect(issues[0]?.key).toBe('server.shutdown_timeout');
  });

  it('rejects an elasticsearch.max_line_bytes over 16 MiB (a document must fit in one request)', () => {
    const env = { TASKLOG__ELASTICSEARCH__MAX_LINE_BYTES: String(16 * 1024 * 1024 + 1) };
    const issues = issuesOf(() => load({ env }));
    expect(issues[0]).toMatchObject({ key: 'elasticsearch.max_line_bytes' });
    expect(issues[0]?.message).toContain('16 MiB');
  });

  it('rejects an empty folder', () => {
    const issues = issuesOf(() => load({ env: { TASKLOG__CORE__STATE_FOLDER: '' } }));
    expect(issues[0]?.message).toContain('non-empty');
  });

  it('reports an invalid path template with the template’s own explanation', () => {
    expectOneEnvIssue(
      { TASKLOG__CORE__PATH_TEMPLATE: '{dag_id}.log' },
      'core.path_template',
      'lacks',
    );
  });

  it('turns a bare absolute store path into a file URL', () => {
    const { config } = load({ env: { TASKLOG__STORE__URL: '/var/log/archive' } });
    expect(config.store.url).toBe('file:///var/log/archive');
  });

  it('explains file:///abs/path for a relative file URL', () => {
    const issues = issuesOf(() => load({ env: { TASKLOG__STORE__URL: 'file://archive' } }));
    expect(issues[0]?.message).toContain('file:///abs/path');
  });

  it.each([
    ['store', 's3://bucket/prefix'],
    ['store', 'gs://bucket/prefix'],
    ['store', 'cloudwatch://arn:aws:logs:eu-west-1:123456789012:log-group:airflow'],
    ['store', 'elasticsearch+https://es.example:9200/logs'],
    ['store', 'elasticsearch+http://localhost:9200/logs'],
    ['store', 'stackdriver://airflow-tasks'],
    ['catalog', 'sqlite:///var/lib/tasklog/catalog.db'],
    ['catalog', 'sqlite::memory:'],
    ['catalog', 'postgres://tasklog@db/tasklog'],
    ['catalog', 'postgresql://tasklog@db/tasklog'],
  ] as const)('accepts the %s URL %s', (section, url) => {
    const env = { [`TASKLOG__${section.toUpperCase()}__URL`]: url };
    expect(load({ env }).config[section].url).toBe(url);
  });

  it.each(['ftp://host/x', 'archive', 's3:///no-bucket'])('rejects the store URL %s', (url) => {
    const issues = issuesOf(() => load({ env: { TASKLOG__STORE__URL: url } }));
    expect(issues[0]?.key).toBe('store.url');
  });

  it('rejects a relative sqlite URL, explaining the three slashes', () => {
    const issues = issuesOf(() => load({ env: { TASKLOG__CATALOG__URL: 'sqlite://catalog.db' } }));
    expect(issues[0]?.message).toContain('three slashes');
  });

  it('hides a URL password in an error message', () => {
    const issues = issuesOf(() => load({ env: { TASKLOG__STORE__URL: 'ftp://u:pw@host/x' } }));
    expect(issues[0]?.message).toContain('ftp://u:***@host/x');
  });
});
