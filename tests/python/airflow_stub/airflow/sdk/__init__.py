"""Stand-in for airflow.sdk: BaseSensorOperator, PokeReturnValue, DAG, task."""
import logging

_current_dag = []


class TaskDeferred(Exception):
    def __init__(self, trigger, method_name):
        super().__init__(method_name)
        self.trigger = trigger
        self.method_name = method_name


class PokeReturnValue:
    def __init__(self, is_done, xcom_value=None):
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self):
        return self.is_done


class _Task:
    def __init__(self, task_id):
        self.task_id = task_id
        self.upstream = []
        if _current_dag:
            _current_dag[-1].tasks.append(self)

    def __rshift__(self, other):
        for o in other if isinstance(other, list) else [other]:
            o.upstream.append(self)
        return other

    def __rrshift__(self, other):
        for o in other if isinstance(other, list) else [other]:
            self.upstream.append(o)
        return self


class BaseSensorOperator(_Task):
    def __init__(self, *, task_id, poke_interval=60, timeout=604800,
                 mode="poke", **kwargs):
        super().__init__(task_id)
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.mode = mode
        self.log = logging.getLogger(task_id)

    def execute(self, context):
        """One poke is enough for the tests: the real one repeats."""
        r = self.poke(context)
        if isinstance(r, PokeReturnValue):
            return r.xcom_value if r.is_done else None
        return None

    def defer(self, *, trigger, method_name, **kwargs):
        raise TaskDeferred(trigger, method_name)


class DAG:
    def __init__(self, dag_id, **kwargs):
        self.dag_id = dag_id
        self.kwargs = kwargs
        self.tasks = []

    def __enter__(self):
        _current_dag.append(self)
        return self

    def __exit__(self, *exc):
        _current_dag.pop()


def task(fn):
    def make(*args, **kwargs):
        t = _Task(fn.__name__)
        t.fn = fn
        return t
    return make
