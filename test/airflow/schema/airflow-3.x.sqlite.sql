-- Airflow 3.1 (3.1.0 – 3.1.8; alembic head cc92b33c6709): dag_run, task_instance and
-- task_instance_history as they are on SQLite after `airflow db migrate` (SQLAlchemy's SQLite type
-- names: UtcDateTime renders as TIMESTAMP, DateTime as DATETIME, PickleType as BLOB, JSON and JSONB
-- as JSON; String(36).with_variant(postgresql.UUID) as VARCHAR(36); sqlalchemy_utils
-- UUIDType(binary=False) as CHAR(32)). Airflow turns `PRAGMA foreign_keys=ON` on for every SQLite
-- connection (airflow-core/src/airflow/settings.py).
--
-- Read from apache/airflow: the same files and migrations as airflow-3.x.postgres.sql
--   (airflow-core/src/airflow/models/dagrun.py, taskinstance.py, taskinstancehistory.py, base.py,
--   utils/sqlalchemy.py, utils/span_status.py; migrations d59cbbef95eb, 7645189f3479, 29ce7909c52b,
--   1cdc775ca98f, 6a9e7a527a88, e00344393f31, e39a26ac59f6, 33b04e4bfa19, ec62e120484d,
--   038dc8bc6284, d8cd3297971e, 3ac9e5732b1f, 66a7743fe20e).
--
-- Left out: the foreign keys to tables outside these three (trigger, dag_version, log_template,
-- backfill); their columns are kept.

CREATE TABLE dag_run (
    id INTEGER NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    queued_at TIMESTAMP,
    logical_date TIMESTAMP,
    start_date TIMESTAMP,
    end_date TIMESTAMP,
    state VARCHAR(50),
    run_id VARCHAR(250) NOT NULL,
    creating_job_id INTEGER,
    run_type VARCHAR(50) NOT NULL,
    triggered_by VARCHAR(50),
    triggering_user_name VARCHAR(512),
    conf JSON,
    data_interval_start TIMESTAMP,
    data_interval_end TIMESTAMP,
    run_after TIMESTAMP NOT NULL,
    last_scheduling_decision TIMESTAMP,
    log_template_id INTEGER,
    updated_at TIMESTAMP,
    clear_number INTEGER DEFAULT '0' NOT NULL,
    backfill_id INTEGER,
    bundle_version VARCHAR(250),
    scheduled_by_job_id INTEGER,
    context_carrier JSON,
    span_status VARCHAR(250) DEFAULT 'not_started' NOT NULL,
    created_dag_version_id CHAR(32),
    CONSTRAINT dag_run_pkey PRIMARY KEY (id),
    CONSTRAINT dag_run_dag_id_run_id_key UNIQUE (dag_id, run_id),
    CONSTRAINT dag_run_dag_id_logical_date_key UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_id_state ON dag_run (dag_id, state);
CREATE INDEX idx_dag_run_dag_id ON dag_run (dag_id);
CREATE INDEX idx_dag_run_run_after ON dag_run (run_after);
CREATE INDEX idx_dag_run_running_dags ON dag_run (state, dag_id) WHERE state='running';
CREATE INDEX idx_dag_run_queued_dags ON dag_run (state, dag_id) WHERE state='queued';

CREATE TABLE task_instance (
    id VARCHAR(36) NOT NULL,
    task_id VARCHAR(250) NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    map_index INTEGER DEFAULT -1 NOT NULL,
    start_date TIMESTAMP,
    end_date TIMESTAMP,
    duration FLOAT,
    state VARCHAR(20),
    try_number INTEGER,
    max_tries INTEGER DEFAULT -1,
    hostname VARCHAR(1000),
    unixname VARCHAR(1000),
    pool VARCHAR(256) NOT NULL,
    pool_slots INTEGER NOT NULL,
    queue VARCHAR(256),
    priority_weight INTEGER,
    operator VARCHAR(1000),
    custom_operator_name VARCHAR(1000),
    queued_dttm TIMESTAMP,
    scheduled_dttm TIMESTAMP,
    queued_by_job_id INTEGER,
    last_heartbeat_at TIMESTAMP,
    pid INTEGER,
    executor VARCHAR(1000),
    executor_config BLOB,
    updated_at TIMESTAMP,
    rendered_map_index VARCHAR(250),
    context_carrier JSON,
    span_status VARCHAR(250) DEFAULT 'not_started' NOT NULL,
    external_executor_id VARCHAR(250),
    trigger_id INTEGER,
    trigger_timeout TIMESTAMP,
    next_method VARCHAR(1000),
    next_kwargs JSON,
    task_display_name VARCHAR(2000),
    dag_version_id CHAR(32),
    CONSTRAINT task_instance_pkey PRIMARY KEY (id),
    CONSTRAINT task_instance_composite_key UNIQUE (dag_id, task_id, run_id, map_index),
    CONSTRAINT task_instance_dag_run_fkey FOREIGN KEY (dag_id, run_id)
        REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE
);
CREATE INDEX ti_dag_state ON task_instance (dag_id, state);
CREATE INDEX ti_dag_run ON task_instance (dag_id, run_id);
CREATE INDEX ti_state ON task_instance (state);
CREATE INDEX ti_state_lkp ON task_instance (dag_id, task_id, run_id, state);
CREATE INDEX ti_pool ON task_instance (pool, state, priority_weight);
CREATE INDEX ti_trigger_id ON task_instance (trigger_id);
CREATE INDEX ti_heartbeat ON task_instance (last_heartbeat_at);

CREATE TABLE task_instance_history (
    task_instance_id VARCHAR(36) NOT NULL,
    task_id VARCHAR(250) NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    map_index INTEGER DEFAULT -1 NOT NULL,
    try_number INTEGER NOT NULL,
    start_date TIMESTAMP,
    end_date TIMESTAMP,
    duration FLOAT,
    state VARCHAR(20),
    max_tries INTEGER DEFAULT -1,
    hostname VARCHAR(1000),
    unixname VARCHAR(1000),
    pool VARCHAR(256) NOT NULL,
    pool_slots INTEGER NOT NULL,
    queue VARCHAR(256),
    priority_weight INTEGER,
    operator VARCHAR(1000),
    custom_operator_name VARCHAR(1000),
    queued_dttm TIMESTAMP,
    scheduled_dttm TIMESTAMP,
    queued_by_job_id INTEGER,
    pid INTEGER,
    executor VARCHAR(1000),
    executor_config BLOB,
    updated_at TIMESTAMP,
    rendered_map_index VARCHAR(250),
    context_carrier JSON,
    span_status VARCHAR(250) DEFAULT 'not_started' NOT NULL,
    external_executor_id VARCHAR(250),
    trigger_id INTEGER,
    trigger_timeout DATETIME,
    next_method VARCHAR(1000),
    next_kwargs JSON,
    task_display_name VARCHAR(2000),
    dag_version_id CHAR(32),
    CONSTRAINT task_instance_history_pkey PRIMARY KEY (task_instance_id),
    CONSTRAINT task_instance_history_ti_fkey FOREIGN KEY (dag_id, task_id, run_id, map_index)
        REFERENCES task_instance (dag_id, task_id, run_id, map_index)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT task_instance_history_dtrt_uq UNIQUE (dag_id, task_id, run_id, map_index, try_number)
);
CREATE INDEX idx_tih_dag_run ON task_instance_history (dag_id, run_id);
