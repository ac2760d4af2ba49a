/**
 * The effective configuration. Keys are snake_case as in the TOML file; each maps to an
 * environment variable `TASKLOG__<SECTION>__<KEY>` (e.g. `TASKLOG__STORE__URL`).
 */
export interface TasklogConfig {
  core: {
    /** Folder under which workers write attempt logs (Airflow's `base_log_folder`). */
    base_log_folder: string;
    /** Path template relative to base_log_folder and the store prefix (Airflow's layout by default). */
    path_template: string;
    /** Remove the worker's copy after the archive copy is verified. Default false. */
    delete_local_copy: boolean;
    /** Folder for the shipper's journals. */
    state_folder: string;
    /** Names (comma-separated) that mark an environment variable as secret, besides Airflow's list. */
    sensitive_names: string;
    /** The file mode mask of the CLI's processes (octal): `027` creates files 0640, folders 0750. */
    umask: string;
  };
  store: {
    /** Archive URL: `file:///abs/path`, `s3://bucket/prefix`, `gs://bucket/prefix`, ... */
    url: string;
    /** `gzip` stores finished logs compressed (blob stores); offsets stay uncompressed. */
    compression: 'none' | 'gzip';
    /** Seconds between flushes of a running attempt's new bytes to the store. */
    flush_interval: number;
    /** Buffered bytes at which a running attempt's writer flushes a chunk. */
    flush_bytes: number;
    /** Other archives the proxy may read, comma-separated store URLs (archives being migrated). */
    read_urls: string;
    /** Longest wait in seconds between two tries while the store is unavailable (retries never give up while an attempt lives). */
    retry_max_interval: number;
    /**
     * Seconds `tasklog run` keeps trying to archive a finished attempt before it exits with the
     * task's exit code and leaves the log to the agent (or a later `tasklog ship`).
     */
    finish_grace: number;
  };
  /** S3 and S3-compatible stores. Credentials come from the AWS SDK's default chain only. */
  s3: {
    region?: string;
    /** For S3-compatible stores (MinIO, Ceph, R2): `https://minio.example:9000`. */
    endpoint?: string;
    force_path_style: boolean;
    /** Role to assume (STS AssumeRole) on top of the default credentials. */
    role_arn?: string;
    role_session_name: string;
    external_id?: string;
    /** Server-side encryption: `AES256` or `aws:kms`. */
    sse?: 'AES256' | 'aws:kms';
    kms_key_id?: string;
    storage_class?: string;
    /** Additional checksum sent with uploads: CRC32, CRC32C, SHA1, SHA256, CRC64NVME. */
    checksum_algorithm?: 'CRC32' | 'CRC32C' | 'SHA1' | 'SHA256' | 'CRC64NVME';
    /** Attempts per request, retries with exponential backoff and full jitter. */
    max_attempts: number;
  };
  /** Google Cloud Storage. Credentials come from Application Default Credentials only. */
  gcs: {
    project_id?: string;
    /** Override of `https://storage.googleapis.com`, e.g. for an emulator. */
    api_endpoint?: string;
    /** Service accounts to impersonate, comma-separated, the last one acting. */
    impersonation_chain?: string;
    max_attempts: number;
  };
  /** CloudWatch Logs. Credentials come from the AWS SDK's default chain only. */
  cloudwatch: {
    /** Overrides the region in the log group ARN. */
    region?: string;
    /** Endpoint override (a VPC endpoint or an emulator). */
    endpoint?: string;
    max_attempts: number;
  };
  /** Google Cloud Logging (`stackdriver://`). Credentials from Application Default Credentials. */
  stackdriver: {
    project_id?: string;
    /** Monitored resource type of written entries (Airflow's default: `global`). */
    resource_type: string;
    /** Monitored resource labels, `key=value` pairs separated by commas. */
    resource_labels?: string;
    /** `host:port` (TLS with ADC) or `http://host:port` (plaintext, no auth: emulators). */
    api_endpoint?: string;
    transport: 'grpc' | 'rest';
    max_attempts: number;
  };
  /** Elasticsearch / OpenSearch (`elasticsearch+http(s)://host:port/INDEX`). */
  elasticsearch: {
    /** Airflow's `log_id_template`. */
    log_id_template: string;
    /** Airflow's `end_of_log_mark`. */
    end_of_log_mark: string;
    /** `message` (Airflow 2) or `event` (Airflow 3). */
    message_field: 'message' | 'event';
    /** Airflow's `host_field`. */
    host_field: string;
    username?: string;
    password?: string;
    api_key?: string;
    /** PEM file of the CA that signed the cluster's certificate. */
    ca_file?: string;
    request_timeout_seconds: number;
    max_retries: number;
    /** Size of a `_bulk` request in bytes. */
    bulk_bytes: number;
    bulk_count: number;
    /**
     * Longest line kept in one document (a longer one is split, and Airflow shows the pieces as
     * lines); at most 16 MiB, a sixth of Elasticsearch's default `http.max_content_length`.
     */
    max_line_bytes: number;
    /** `opensearch` skips the Elasticsearch product check of the client. */
    distribution: 'elasticsearch' | 'opensearch';
  };
  /** The worker agent (`tasklog agent`). */
  agent: {
    host: string;
    port: number;
    /** URL the proxy reaches this agent at; default the bound URL. */
    url?: string;
    token_algorithm: 'HS256' | 'HS512' | 'EdDSA' | 'ES256';
    /** Shared secret (HS256: ≥ 32 bytes, HS512: ≥ 64 bytes); give it as `token_secret_cmd`. */
    token_secret?: string;
    token_secret_file?: string;
    /** Public key (PEM or JWK) the proxy's tokens are verified with (EdDSA, ES256). */
    token_public_key?: string;
    token_public_key_file?: string;
    /** Private key (PEM or JWK) the proxy signs tokens with (EdDSA, ES256); agents never hold it. */
    token_private_key?: string;
    token_private_key_file?: string;
    tls_cert?: string;
    tls_key?: string;
    /** Seconds without growth (and without a completion marker) before an attempt is abandoned. */
    idle_timeout: number;
    heartbeat_interval: number;
    /** Seconds without a heartbeat after which the proxy counts an attempt's writer as lost. */
    heartbeat_timeout: number;
    shutdown_timeout: number;
    /**
     * How the agent knows that an attempt without a completion marker has finished (the marker
     * always counts): `marker` (only the marker; idle logs are abandoned), `airflow-db` (Airflow's
     * metadata database says the try has ended), `idle` (no growth for `idle_timeout` and no
     * process holding the file open for writing).
     */
    completion: 'marker' | 'airflow-db' | 'idle';
    /** Airflow's `sql_alchemy_conn` (PostgreSQL or SQLite), read only; for `completion = "airflow-db"`. */
    airflow_db_url?: string;
    /** Airflow's `[api] secret_key` (`[webserver] secret_key` in 2.x): answer Airflow's log-server requests. */
    airflow_secret_key?: string;
    /** Seconds of clock skew allowed on Airflow's tokens (`[webserver] log_request_clock_grace`). */
    airflow_clock_grace: number;
    /**
     * Agent URLs the proxy may reach, comma-separated origins (`https://*.workers.internal:8795`)
     * or CIDRs (`10.0.0.0/8`); empty: any http(s) URL. Link-local and metadata addresses never.
     */
    allowed_urls: string;
    /** Finished logs shipped at once by the agent's sweep. */
    ship_concurrency: number;
    /** Seconds between full scans of the base folder (the safety net behind folder watches). */
    scan_interval: number;
  };
  /** Who may read which log through `tasklog serve`. */
  auth: {
    /** `jwt` (OIDC bearer tokens), `tokens` (static API tokens) or `none` (loopback only). */
    mode: 'none' | 'jwt' | 'tokens';
    /** The OIDC provider's JWKS endpoint (keys rotate without a restart). */
    jwks_url?: string;
    /** Instead of `jwks_url`: a public key (PEM or JWK). */
    public_key?: string;
    /** Instead of `jwks_url`: a shared secret for HS256/HS384/HS512. */
    secret?: string;
    issuer?: string;
    audience?: string;
    /** Accepted signature algorithms, comma-separated. */
    algorithms: string;
    /** Seconds of clock skew allowed on `exp`/`nbf`. */
    clock_tolerance: number;
    /** Seconds fetched JWKS keys are trusted before they are fetched again. */
    jwks_cache: number;
    /** Claim naming the principal. */
    name_claim: string;
    /** Claim with the DAG id patterns a principal may read (a list, or separated by spaces or commas). */
    dags_claim: string;
    /** Claim that is `true` for principals with the admin grant. */
    admin_claim: string;
    /** Where `tasklog token create` keeps the API tokens' digests (`mode = "tokens"`). */
    tokens_file: string;
  };
  catalog: {
    /** `sqlite:///abs/path/catalog.db` (later `postgres://...`). */
    url: string;
  };
  server: {
    host: string;
    port: number;
    /** Seconds in-flight requests get to finish on SIGTERM before they are closed. */
    shutdown_timeout: number;
    /**
     * Host names the proxy answers to (`Host` header), comma-separated, `*.example.com` for one
     * label; empty: loopback names when it listens on loopback, else any.
     */
    allowed_hosts: string;
    /** Open connections at most; more are refused. */
    max_connections: number;
    /** Followers of running logs at once, in all and per attempt. */
    max_followers: number;
    max_followers_per_attempt: number;
    /** Seconds a client may take no byte of its response before it is cut off. */
    send_timeout: number;
  };
  logging: {
    level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  };
}
