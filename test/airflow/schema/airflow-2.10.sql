-- Airflow 2.10 (2.10.0 – 2.10.5): dag_run, task_instance and task_instance_history as they are
-- after `airflow db migrate` (a fresh database is created from the ORM models, an older one is
-- migrated to the same shape), written once for PostgreSQL and SQLite. A column whose type
-- SQLAlchemy renders differently per dialect names its model type (IntegerPk, UtcDateTime,
-- DateTime, PickleType); dialects.ts writes each database's type in its place. Airflow turns
-- `PRAGMA foreign_keys=ON` on for every SQLite connection (airflow/settings.py).
--
-- Read from apache/airflow at 2.10:
--   airflow/models/dagrun.py                 DagRun (columns, dag_run_dag_id_execution_date_key,
--                                            dag_run_dag_id_run_id_key, indexes)
--   airflow/models/taskinstance.py           TaskInstance (task_instance_pkey on
--                                            dag_id, task_id, run_id, map_index;
--                                            task_instance_dag_run_fkey)
--   airflow/models/taskinstancehistory.py    TaskInstanceHistory
--   airflow/models/base.py                   StringID = VARCHAR(250); naming convention *_pkey
--   airflow/utils/sqlalchemy.py              UtcDateTime, ExtendedJSON = JSON,
--                                            ExecutorConfigType = PickleType
--   airflow/migrations/versions/
--     0021_2_10_0_add_task_instance_history.py (d482b7261ff9)  the whole task_instance_history
--     0019_2_10_0_add_new_executor_field_to_db.py (677fdbb7fc54) task_instance.executor
--     0014_2_9_0_add_display_name_for_dag_and_task_.py          task_instance.task_display_name
--     0009_2_9_0_add_rendered_map_index_to_taskinstance.py      task_instance.rendered_map_index
--     0004_2_8_0_add_clear_number_to_dag_run.py                 dag_run.clear_number
--
-- Left out: the foreign keys to tables outside these three (task_instance.trigger_id -> trigger,
-- dag_run.log_template_id -> log_template); their columns are kept.
--
-- A line `@NAME` stands for the lines of block NAME (`@define NAME` … `@end`): below, or in
-- task-instance-common.sql for what 3.x has too.

-- The columns task_instance_history copies from task_instance after its key and try_number.
@define try_columns
    max_tries INTEGER DEFAULT -1,
    hostname VARCHAR(1000),
    unixname VARCHAR(1000),
    job_id INTEGER,
    @pool_and_queue
    queued_by_job_id INTEGER,
    pid INTEGER,
    executor VARCHAR(1000),
    executor_config PickleType,
    updated_at UtcDateTime,
    rendered_map_index VARCHAR(250),
    external_executor_id VARCHAR(250),
    trigger_id INTEGER,
    trigger_timeout DateTime,
    next_method VARCHAR(1000),
    next_kwargs JSON,
    task_display_name VARCHAR(2000),
@end

CREATE TABLE dag_run (
    id IntegerPk NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    queued_at UtcDateTime,
    execution_date UtcDateTime NOT NULL,
    start_date UtcDateTime,
    end_date UtcDateTime,
    state VARCHAR(50),
    run_id VARCHAR(250) NOT NULL,
    creating_job_id INTEGER,
    external_trigger BOOLEAN,
    run_type VARCHAR(50) NOT NULL,
    conf PickleType,
    data_interval_start UtcDateTime,
    data_interval_end UtcDateTime,
    last_scheduling_decision UtcDateTime,
    dag_hash VARCHAR(32),
    log_template_id INTEGER,
    updated_at UtcDateTime,
    clear_number INTEGER DEFAULT '0' NOT NULL,
    CONSTRAINT dag_run_pkey PRIMARY KEY (id),
    CONSTRAINT dag_run_dag_id_execution_date_key UNIQUE (dag_id, execution_date),
    CONSTRAINT dag_run_dag_id_run_id_key UNIQUE (dag_id, run_id)
);
CREATE INDEX dag_id_state ON dag_run (dag_id, state);
CREATE INDEX idx_dag_run_dag_id ON dag_run (dag_id);
CREATE INDEX idx_dag_run_running_dags ON dag_run (state, dag_id) WHERE state='running';
CREATE INDEX idx_dag_run_queued_dags ON dag_run (state, dag_id) WHERE state='queued';

CREATE TABLE task_instance (
    @task_instance_key
    @try_state
    try_number INTEGER,
    @try_columns
    CONSTRAINT task_instance_pkey PRIMARY KEY (dag_id, task_id, run_id, map_index),
    CONSTRAINT task_instance_dag_run_fkey FOREIGN KEY (dag_id, run_id)
        REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE
);
@task_instance_indexes
CREATE INDEX ti_job_id ON task_instance (job_id);
CREATE INDEX ti_trigger_id ON task_instance (trigger_id);

CREATE TABLE task_instance_history (
    id IntegerPk NOT NULL,
    @task_instance_key
    try_number INTEGER NOT NULL,
    @try_state
    @try_columns
    CONSTRAINT task_instance_history_pkey PRIMARY KEY (id),
    CONSTRAINT task_instance_history_ti_fkey FOREIGN KEY (dag_id, task_id, run_id, map_index)
        REFERENCES task_instance (dag_id, task_id, run_id, map_index)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT task_instance_history_dtrt_uq UNIQUE (dag_id, task_id, run_id, map_index, try_number)
);
