-- The pieces of task_instance (and of task_instance_history, which copies its columns) that
-- Airflow 2.10 and 3.x share, as blocks the version files name: `@define NAME` … `@end` is block
-- NAME, and a line `@NAME` in airflow-<version>.sql stands for its lines (dialects.ts writes them
-- out). Types as in the version files.

-- The task instance's natural key (task_instance_pkey in 2.10, task_instance_composite_key in 3.x).
@define task_instance_key
    task_id VARCHAR(250) NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    map_index INTEGER DEFAULT -1 NOT NULL,
@end

-- When the try ran, and its state.
@define try_state
    start_date UtcDateTime,
    end_date UtcDateTime,
    duration FLOAT,
    state VARCHAR(20),
@end

-- Where the try queues, and for which operator.
@define pool_and_queue
    pool VARCHAR(256) NOT NULL,
    pool_slots INTEGER NOT NULL,
    queue VARCHAR(256),
    priority_weight INTEGER,
    operator VARCHAR(1000),
    custom_operator_name VARCHAR(1000),
    queued_dttm UtcDateTime,
@end

-- task_instance's indexes in both versions (each version adds its own).
@define task_instance_indexes
CREATE INDEX ti_dag_state ON task_instance (dag_id, state);
CREATE INDEX ti_dag_run ON task_instance (dag_id, run_id);
CREATE INDEX ti_state ON task_instance (state);
CREATE INDEX ti_state_lkp ON task_instance (dag_id, task_id, run_id, state);
CREATE INDEX ti_pool ON task_instance (pool, state, priority_weight);
@end
