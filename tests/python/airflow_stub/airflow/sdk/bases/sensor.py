"""Stand-in for airflow.sdk.bases.sensor (task-sdk/src/airflow/sdk/bases/
sensor.py, main at 028148b0): BaseSensorOperator's arguments and checks,
its execute() loop with timeout, soft_fail, never_fail and silent_fail,
and resume_execution() after a deferral.  Not here: exponential_backoff's
intervals (the argument is taken and ignored) and reschedule dates kept
across tries."""
import datetime as dt
import time

from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import (
    AirflowException, AirflowFailException, AirflowRescheduleException,
    AirflowSensorTimeout, AirflowSkipException, AirflowTaskTimeout,
    TaskDeferralTimeout)

# [sensors] default_timeout: 7 days
DEFAULT_TIMEOUT = 7 * 24 * 3600.0
# What soft_fail (and never_fail) turn into a skip, from poke() and after
# a deferral alike.
_SOFT_FAIL = (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException)


class PokeReturnValue:
    def __init__(self, is_done, xcom_value=None):
        self.xcom_value = xcom_value
        self.is_done = is_done

    def __bool__(self):
        return self.is_done


def _seconds(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise ValueError(f"Operator arg `{name}` must be timedelta object or a non-negative number")


class BaseSensorOperator(BaseOperator):
    valid_modes = ["poke", "reschedule"]

    def __init__(self, *, poke_interval=60, timeout=None, soft_fail=False,
                 mode="poke", exponential_backoff=False, max_wait=None,
                 silent_fail=False, never_fail=False, **kwargs):
        super().__init__(**kwargs)
        self.poke_interval = _seconds("poke_interval", poke_interval)
        self.soft_fail = soft_fail
        self.timeout = _seconds("timeout", DEFAULT_TIMEOUT if timeout is None else timeout)
        self.mode = mode
        self.exponential_backoff = exponential_backoff
        self.max_wait = _seconds("max_wait", max_wait, allow_none=True)
        if soft_fail and never_fail:
            raise ValueError("soft_fail and never_fail are mutually exclusive, "
                             "you can not provide both.")
        self.silent_fail = silent_fail
        self.never_fail = never_fail
        if mode not in self.valid_modes:
            raise ValueError(f"The mode must be one of {self.valid_modes},"
                             f"'.{self.task_id}'; received '{mode}'.")

    @property
    def reschedule(self):
        return self.mode == "reschedule"

    def poke(self, context):
        raise AirflowException("Override me.")

    def _skip_instead(self, e):
        if self.soft_fail:
            raise AirflowSkipException("Skipping due to soft_fail is set to True.") from e
        if self.never_fail:
            raise AirflowSkipException("Skipping due to never_fail is set to True.") from e

    def execute(self, context):
        if self.reschedule:
            ti = context.get("ti")
            first = getattr(ti, "first_reschedule_date", None)
            start = first or dt.datetime.now(dt.timezone.utc)

            def run_duration():
                return (dt.datetime.now(dt.timezone.utc) - start).total_seconds()
        else:
            started = time.monotonic()

            def run_duration():
                return time.monotonic() - started

        while True:
            try:
                r = self.poke(context)
            except _SOFT_FAIL as e:
                self._skip_instead(e)
                raise
            except AirflowSkipException:
                raise
            except Exception as e:
                if self.silent_fail:
                    self.log.error("Sensor poke failed: %s", e)
                    r = False
                else:
                    if self.never_fail:
                        raise AirflowSkipException(
                            "Skipping due to never_fail is set to True.") from e
                    raise
            if r:
                self.log.info("Success criteria met. Exiting.")
                return r.xcom_value if isinstance(r, PokeReturnValue) else None
            if run_duration() > self.timeout:
                msg = (f"Sensor has timed out; run duration of {run_duration()} "
                       f"seconds exceeds the specified timeout of {self.timeout}.")
                if self.soft_fail:
                    raise AirflowSkipException(msg)
                raise AirflowSensorTimeout(msg)
            if self.reschedule:
                raise AirflowRescheduleException(
                    dt.datetime.now(dt.timezone.utc)
                    + dt.timedelta(seconds=self.poke_interval))
            time.sleep(self.poke_interval)

    def resume_execution(self, next_method, next_kwargs, context):
        try:
            try:
                return super().resume_execution(next_method, next_kwargs, context)
            except TaskDeferralTimeout as e:
                raise AirflowSensorTimeout(*e.args) from e
        except _SOFT_FAIL as e:
            self._skip_instead(e)
            raise
        except AirflowSkipException:
            raise
        except AirflowException as e:
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from e
            raise
