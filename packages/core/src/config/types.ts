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
  };
  store: {
    /** Archive URL: `file:///abs/path` (later `s3://`, `gs://`, ...). */
    url: string;
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
  };
  logging: {
    level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  };
}
