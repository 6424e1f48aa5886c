"""Stand-in for airflow.sdk.bases.operator (task-sdk/src/airflow/sdk/bases/
operator.py, main at 003b1714): BaseOperator's keyword arguments, defer()
and resume_execution().  It does not render templates, merge default_args
or check argument types."""
import datetime as dt
import logging

from airflow.sdk.exceptions import TaskDeferralError, TaskDeferralTimeout, TaskDeferred

# BaseOperator.__init__'s keyword arguments and their defaults (None where
# Airflow's default is a config value or an empty collection).  Anything
# else left in **kwargs is refused, as BaseOperator.__init__ does.
_ARGS = {
    "owner": "airflow", "email": None, "email_on_retry": True,
    "email_on_failure": True, "retries": 0,
    "retry_delay": dt.timedelta(seconds=300), "retry_exponential_backoff": 0,
    "max_retry_delay": None, "retry_policy": None, "start_date": None,
    "end_date": None, "depends_on_past": False,
    "depends_on_previous_tasks": None, "ignore_first_depends_on_past": True,
    "wait_for_past_depends_before_skipping": False,
    "wait_for_downstream": False, "dag": None, "params": None,
    "default_args": None, "priority_weight": 1, "weight_rule": "downstream",
    "queue": "default", "pool": None, "pool_slots": 1, "sla": None,
    "execution_timeout": None, "on_execute_callback": None,
    "on_failure_callback": None, "on_success_callback": None,
    "on_retry_callback": None, "on_skipped_callback": None,
    "pre_execute": None, "post_execute": None, "trigger_rule": "all_success",
    "resources": None, "run_as_user": None, "map_index_template": None,
    "max_active_tis_per_dag": None, "max_active_tis_per_dagrun": None,
    "executor": None, "executor_config": None, "do_xcom_push": True,
    "multiple_outputs": False, "inlets": None, "outlets": None,
    "task_group": None, "doc": None, "doc_md": None, "doc_json": None,
    "doc_yaml": None, "doc_rst": None, "task_display_name": None,
    "logger_name": None, "allow_nested_operators": True,
    "render_template_as_native_obj": None,
}

# TRIGGER_FAIL_REPR: the next_method of a task the triggerer failed.
TRIGGER_FAIL = "__fail__"
TRIGGER_TIMEOUT = "Trigger timeout"

_current_dag = []  # the DAGs whose "with" blocks are open (DagContext)


class DependencyMixin:
    """>> between tasks and lists of tasks."""

    def __rshift__(self, other):
        for o in other if isinstance(other, list) else [other]:
            o.upstream.append(self)
        return other

    def __rrshift__(self, other):
        for o in other if isinstance(other, list) else [other]:
            self.upstream.append(o)
        return self


class BaseOperator(DependencyMixin):
    template_fields = ()

    def __init__(self, *, task_id, **kwargs):
        unknown = {k: v for k, v in kwargs.items() if k not in _ARGS}
        if unknown:
            raise TypeError(
                f"Invalid arguments were passed to {type(self).__name__} "
                f"(task_id: {task_id}). Invalid arguments were:\n**kwargs: {unknown}")
        self.task_id = task_id
        for k, default in _ARGS.items():
            setattr(self, k, kwargs.get(k, default))
        self.upstream = []
        self.log = logging.getLogger(f"airflow.task.operators.{task_id}")
        if self.dag is None and _current_dag:
            self.dag = _current_dag[-1]
        if self.dag is not None:
            self.dag.tasks.append(self)

    def execute(self, context):
        raise NotImplementedError()

    def defer(self, *, trigger, method_name, kwargs=None, timeout=None):
        raise TaskDeferred(trigger=trigger, method_name=method_name,
                           kwargs=kwargs, timeout=timeout)

    def resume_execution(self, next_method, next_kwargs, context):
        """Called instead of execute() when the trigger has fired (or the
        triggerer failed the task: next_method "__fail__")."""
        next_kwargs = next_kwargs or {}
        if next_method == TRIGGER_FAIL:
            error = next_kwargs.get("error", "Unknown")
            if error == TRIGGER_TIMEOUT:
                raise TaskDeferralTimeout(error)
            raise TaskDeferralError(error)
        return getattr(self, next_method)(context, **next_kwargs)
