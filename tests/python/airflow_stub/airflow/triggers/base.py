"""Stand-in for airflow.triggers.base (airflow-core/src/airflow/triggers/
base.py, main at 007f049b): BaseTrigger is abstract (abc.ABC), so a trigger
without serialize() or run() cannot be made; TriggerEvent holds a payload.
Where Airflow checks that a payload can be stored, stub_runner.py does."""
import abc
import logging


class BaseTrigger(abc.ABC):
    def __init__(self, **kwargs):
        self.task_instance = None
        self.trigger_id = None
        self.log = logging.getLogger(f"airflow.triggers.{type(self).__name__}")

    @abc.abstractmethod
    def serialize(self):
        """(classpath, kwargs) to make the trigger again elsewhere."""
        raise NotImplementedError("Triggers must implement serialize()")

    @abc.abstractmethod
    async def run(self):
        """Yield TriggerEvents."""
        raise NotImplementedError("Triggers must implement run()")
        yield  # an async generator

    async def cleanup(self):
        pass

    def __repr__(self):
        classpath, kwargs = self.serialize()
        return f"<{classpath} {', '.join(f'{k}={v}' for k, v in kwargs.items())}>"


class TriggerEvent:
    def __init__(self, payload):
        self.payload = payload

    def __repr__(self):
        return f"TriggerEvent<{self.payload!r}>"
