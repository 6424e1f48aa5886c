"""The stand-in's task runner and triggerer: what Airflow 3 does around an
operator's execute(), in so far as the sensors' tests need it.

- run_task(): execute() as the task runner calls it
  (task-sdk/src/airflow/sdk/execution_time/task_runner.py), with a context
  holding a task instance whose start_date is when the try began.  The
  return value is pushed as the XCom, and a TaskDeferred's trigger is
  serialized to be stored, both through to_wire().
- run_trigger(): the triggerer.  It makes the trigger again from its
  serialize() (classpath and kwargs, as read back from the store), runs it
  until its first event, and fails the task with "Trigger timeout" when the
  deferral's timeout passes first (the scheduler's check); the task then
  resumes in resume_execution().
- to_wire(): Airflow hands XComs and trigger kwargs to its API server as
  UTF-8 JSON: BaseXCom.set sends the value to the supervisor, and
  TaskInstanceOperations.defer sends the deferral with pydantic's
  model_dump_json() (task-sdk/src/airflow/sdk/api/client.py, main at
  00414da8).  Both write UTF-8 and refuse a str holding a lone surrogate,
  so this is json.dumps(..., ensure_ascii=False).encode("utf-8"): with
  json.dumps's default ensure_ascii=True a lone surrogate would pass as an
  ASCII escape and the test would miss what Airflow refuses.
"""
import asyncio
import datetime as dt
import importlib
import json

from airflow.sdk.bases.operator import TRIGGER_FAIL, TRIGGER_TIMEOUT
from airflow.sdk.exceptions import (
    AirflowRescheduleException, AirflowSkipException, TaskDeferred)


_TIMED_OUT = object()


def to_wire(value):
    """value as the bytes Airflow's HTTP layer sends (raises TypeError or
    UnicodeEncodeError where Airflow cannot send it)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class TaskInstance:
    def __init__(self, start_date=None):
        self.start_date = start_date or dt.datetime.now(dt.timezone.utc)
        self.first_reschedule_date = None


def context_for(start_date=None):
    return {"ti": TaskInstance(start_date)}


class Outcome:
    """How a try ended: state is "success", "failed", "skipped",
    "up_for_reschedule" or "deferred"; xcom is what was pushed, error the
    exception, deferral the TaskDeferred."""

    def __init__(self, state, xcom=None, error=None, deferral=None):
        self.state, self.xcom, self.error, self.deferral = state, xcom, error, deferral

    def __repr__(self):
        return f"<Outcome {self.state} error={self.error!r}>"


def _run(task, call):
    try:
        result = call()
    except TaskDeferred as d:
        try:
            to_wire({"classpath": d.trigger.serialize()[0],
                     "trigger_kwargs": d.trigger.serialize()[1],
                     "next_kwargs": d.kwargs})
        except (TypeError, ValueError) as e:
            return Outcome("failed", error=e)
        return Outcome("deferred", deferral=d)
    except AirflowSkipException as e:
        return Outcome("skipped", error=e)
    except AirflowRescheduleException as e:
        return Outcome("up_for_reschedule", error=e)
    except Exception as e:
        return Outcome("failed", error=e)
    if result is not None and task.do_xcom_push:
        try:
            to_wire(result)
        except (TypeError, ValueError) as e:  # UnicodeEncodeError too
            return Outcome("failed", error=e)
    return Outcome("success", xcom=result)


def run_task(task, context=None):
    """One try of task: execute() and what the runner does with its end."""
    context = context if context is not None else context_for()
    return _run(task, lambda: task.execute(context))


def run_trigger(deferral, cap=20.0):
    """Run a deferral's trigger as the triggerer does: (next_method,
    next_kwargs) to resume the task with.  cap bounds a test's wait for a
    trigger that has no timeout (AssertionError past it)."""
    classpath, kwargs = deferral.trigger.serialize()
    kwargs = json.loads(to_wire(kwargs))  # what the triggerer reads back
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)
    timeout = deferral.timeout
    if isinstance(timeout, dt.timedelta):
        timeout = timeout.total_seconds()

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    async def go():
        try:
            return await asyncio.wait_for(
                first_event(), cap if timeout is None else timeout)
        except asyncio.TimeoutError:
            if timeout is None:
                raise AssertionError(
                    f"the trigger fired no event in {cap} s and the deferral "
                    "has no timeout: it would wait for ever") from None
            return _TIMED_OUT

    payload = asyncio.run(go())
    if payload is _TIMED_OUT:
        return TRIGGER_FAIL, {"error": TRIGGER_TIMEOUT}
    event = json.loads(to_wire(payload))
    return deferral.method_name, dict(deferral.kwargs or {}, event=event)


def resume_task(task, next_method, next_kwargs, context=None):
    context = context if context is not None else context_for()
    return _run(task, lambda: task.resume_execution(next_method, next_kwargs, context))


def run_to_end(task, context=None, cap=20.0):
    """run_task, then each deferral's trigger and the resumed task, until
    the try ends."""
    context = context if context is not None else context_for()
    outcome = run_task(task, context)
    while outcome.state == "deferred":
        method, kwargs = run_trigger(outcome.deferral, cap)
        outcome = resume_task(task, method, kwargs, context)
    return outcome
