"""Stand-in for airflow.sdk.exceptions (task-sdk/src/airflow/sdk/exceptions.py,
main at 01585a10).  The classes and their bases are Airflow's: note that
TaskDeferred and AirflowTaskTimeout are BaseExceptions, so an
"except Exception" in a task does not swallow them."""


class AirflowException(Exception):
    """Base of Airflow's errors."""


class AirflowNotFoundException(AirflowException):
    """A connection, variable ... that does not exist."""


class AirflowFailException(AirflowException):
    """Fail the task at once, without retries."""


class AirflowSkipException(AirflowException):
    """Mark the task skipped."""


class AirflowSensorTimeout(AirflowException):
    """A sensor's timeout has passed."""


class AirflowRescheduleException(AirflowException):
    """Reschedule the task (a sensor in mode="reschedule") at a later time."""

    def __init__(self, reschedule_date):
        super().__init__()
        self.reschedule_date = reschedule_date


class AirflowTaskTimeout(BaseException):
    """The task's execution_timeout has passed."""


class TaskDeferred(BaseException):
    """Raised by BaseOperator.defer(): suspend the task until the trigger
    fires, then resume it in method_name (with kwargs and the event);
    timeout is how long the trigger may run before the task fails."""

    def __init__(self, *, trigger, method_name, kwargs=None, timeout=None):
        super().__init__()
        self.trigger = trigger
        self.method_name = method_name
        self.kwargs = kwargs
        self.timeout = timeout

    def __repr__(self):
        return f"<TaskDeferred trigger={self.trigger} method={self.method_name}>"


class TaskDeferralError(AirflowException):
    """The trigger failed."""


class TaskDeferralTimeout(AirflowException):
    """The deferral's timeout passed before the trigger fired."""
