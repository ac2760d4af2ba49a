-- Airflow 3.1 (3.1.0 – 3.1.8; alembic head cc92b33c6709, 3.1.8 only adds a task_reschedule index):
-- dag_run, task_instance and task_instance_history as they are after `airflow db migrate`,
-- written once for PostgreSQL and SQLite. Airflow 3.0.x has the same three tables less
-- dag_run.triggering_user_name. A column whose type SQLAlchemy renders differently per dialect
-- names its model type (IntegerPk, UtcDateTime, DateTime, PickleType, JsonbVariant, UuidVariant,
-- UUIDType); dialects.ts writes each database's type in its place. Airflow turns
-- `PRAGMA foreign_keys=ON` on for every SQLite connection (airflow-core/src/airflow/settings.py).
--
-- Read from apache/airflow (airflow-core/src/airflow/):
--   models/dagrun.py               DagRun (logical_date, run_after, dag_run_dag_id_run_id_key,
--                                  dag_run_dag_id_logical_date_key, indexes)
--   models/taskinstance.py         TaskInstance: `id` UUID primary key (task_instance_pkey), the old
--                                  key kept as task_instance_composite_key, task_instance_dag_run_fkey
--   models/taskinstancehistory.py  TaskInstanceHistory: primary key task_instance_id, the id of the
--                                  try it records
--   models/base.py (StringID = VARCHAR(250)), utils/sqlalchemy.py (UtcDateTime, ExtendedJSON,
--   ExecutorConfigType), utils/span_status.py (SpanStatus.NOT_STARTED = 'not_started')
--   migrations/versions/ (revision ids as in docs/migrations-ref.rst):
--     d59cbbef95eb  0042_3_0_0_add_uuid_primary_key_to_task_instance_
--     7645189f3479  0060_3_0_0_add_try_id_to_ti_and_tih (task_instance_history.id dropped)
--     29ce7909c52b  0068_3_0_0_ti_table_id_unique_per_try (try_id renamed task_instance_id:
--                   task_instance.id changes with every try)
--     1cdc775ca98f  rename execution_date to logical_date (nullable)
--     6a9e7a527a88  dag_run.run_after;  e00344393f31  dag_run.external_trigger dropped
--     e39a26ac59f6  dag_run.conf JSONB; 33b04e4bfa19  scheduled_dttm
--     ec62e120484d  context_carrier, span_status, dag_run.scheduled_by_job_id
--     038dc8bc6284  task_instance.trigger_timeout as UTC; d8cd3297971e  last_heartbeat_at
--     3ac9e5732b1f  (3.1.0) task_instance.dag_version_id foreign key ON DELETE RESTRICT
--     66a7743fe20e  (3.1.0) dag_run.triggering_user_name
--
-- Left out: the foreign keys to tables outside these three (task_instance.trigger_id -> trigger,
-- task_instance.dag_version_id and dag_run.created_dag_version_id -> dag_version,
-- dag_run.log_template_id -> log_template, dag_run.backfill_id -> backfill); columns are kept.
--
-- A line `@NAME` stands for the lines of block NAME (`@define NAME` … `@end`): below, or in
-- task-instance-common.sql for what 2.10 has too.

-- The columns task_instance_history copies from task_instance after its key, try_number and
-- try_state, in two runs: between them task_instance has last_heartbeat_at, which the history
-- lacks, and after them trigger_timeout, which the history keeps without a time zone.
@define try_queueing
    max_tries INTEGER DEFAULT -1,
    hostname VARCHAR(1000),
    unixname VARCHAR(1000),
    @pool_and_queue
    scheduled_dttm UtcDateTime,
    queued_by_job_id INTEGER,
@end
@define try_execution
    pid INTEGER,
    executor VARCHAR(1000),
    executor_config PickleType,
    updated_at UtcDateTime,
    rendered_map_index VARCHAR(250),
    context_carrier JSON,
    span_status VARCHAR(250) DEFAULT 'not_started' NOT NULL,
    external_executor_id VARCHAR(250),
    trigger_id INTEGER,
@end

CREATE TABLE dag_run (
    id IntegerPk NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    queued_at UtcDateTime,
    logical_date UtcDateTime,
    start_date UtcDateTime,
    end_date UtcDateTime,
    state VARCHAR(50),
    run_id VARCHAR(250) NOT NULL,
    creating_job_id INTEGER,
    run_type VARCHAR(50) NOT NULL,
    triggered_by VARCHAR(50),
    triggering_user_name VARCHAR(512),
    conf JsonbVariant,
    data_interval_start UtcDateTime,
    data_interval_end UtcDateTime,
    run_after UtcDateTime NOT NULL,
    last_scheduling_decision UtcDateTime,
    log_template_id INTEGER,
    updated_at UtcDateTime,
    clear_number INTEGER DEFAULT '0' NOT NULL,
    backfill_id INTEGER,
    bundle_version VARCHAR(250),
    scheduled_by_job_id INTEGER,
    context_carrier JSON,
    span_status VARCHAR(250) DEFAULT 'not_started' NOT NULL,
    created_dag_version_id UUIDType,
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
    id UuidVariant NOT NULL,
    @task_instance_key
    @try_state
    try_number INTEGER,
    @try_queueing
    last_heartbeat_at UtcDateTime,
    @try_execution
    trigger_timeout UtcDateTime,
    next_method VARCHAR(1000),
    next_kwargs JSON,
    task_display_name VARCHAR(2000),
    dag_version_id UUIDType,
    CONSTRAINT task_instance_pkey PRIMARY KEY (id),
    CONSTRAINT task_instance_composite_key UNIQUE (dag_id, task_id, run_id, map_index),
    CONSTRAINT task_instance_dag_run_fkey FOREIGN KEY (dag_id, run_id)
        REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE
);
@task_instance_indexes
CREATE INDEX ti_trigger_id ON task_instance (trigger_id);
CREATE INDEX ti_heartbeat ON task_instance (last_heartbeat_at);

CREATE TABLE task_instance_history (
    task_instance_id UuidVariant NOT NULL,
    @task_instance_key
    try_number INTEGER NOT NULL,
    @try_state
    @try_queueing
    @try_execution
    trigger_timeout DateTime,
    next_method VARCHAR(1000),
    next_kwargs JSON,
    task_display_name VARCHAR(2000),
    dag_version_id UUIDType,
    CONSTRAINT task_instance_history_pkey PRIMARY KEY (task_instance_id),
    CONSTRAINT task_instance_history_ti_fkey FOREIGN KEY (dag_id, task_id, run_id, map_index)
        REFERENCES task_instance (dag_id, task_id, run_id, map_index)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT task_instance_history_dtrt_uq UNIQUE (dag_id, task_id, run_id, map_index, try_number)
);
CREATE INDEX idx_tih_dag_run ON task_instance_history (dag_id, run_id);
