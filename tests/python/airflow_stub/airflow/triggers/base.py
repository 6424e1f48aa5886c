"""Stand-in for airflow.triggers.base."""
import logging


class BaseTrigger:
    def __init__(self, **kwargs):
        self.log = logging.getLogger(type(self).__name__)


class TriggerEvent:
    def __init__(self, payload):
        self.payload = payload
