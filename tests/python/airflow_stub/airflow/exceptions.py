class AirflowFailException(Exception):
    """Fail the task at once, without retries."""
