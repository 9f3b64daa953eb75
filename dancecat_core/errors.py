"""One error hierarchy for everything DanceCat raises on purpose.

Each error's message is fit to show to a user as it is: the console prints it as one line,
the web layer maps the class to an HTTP status in one place (``dancecat_web.errors``).
"""


class DancecatError(Exception):
    """Base of every error DanceCat raises deliberately; ``str()`` is the user message."""

    code = "error"


class ConfigError(DancecatError):
    """A setting is missing or malformed; the message names the key."""

    code = "config"


class ValidationError(DancecatError):
    """User input was refused; ``field`` names the offending field when there is one."""

    code = "invalid"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(DancecatError):
    """The object does not exist, or the user may not see it (the two are not told apart)."""

    code = "not_found"


class Conflict(DancecatError):
    """The request does not fit the object's current state (e.g. a run not finished yet)."""

    code = "conflict"


class ResultExpired(DancecatError):
    """The run's result outlived ``JOB_RESULT_VALID_SECONDS`` and was deleted."""

    code = "result_expired"


class RangeNotSatisfiable(DancecatError):
    """A download asked for bytes past the end of the result (HTTP 416); ``size`` is its
    length, which the answer states."""

    code = "range_not_satisfiable"

    def __init__(self, size: int):
        super().__init__(f"the result has {size} bytes: the range asked for is not in it")
        self.size = size


class IllegalTransition(DancecatError):
    """A tracker was asked to move between two statuses that do not follow each other."""

    code = "illegal_transition"


class PluginError(DancecatError):
    """A plugin is misconfigured: a duplicate name, an unknown driver, a bad hook."""

    code = "plugin"


class QueryError(DancecatError):
    """The queried database refused or failed a query; the message is already scrubbed."""

    code = "query_failed"


class QueryTimeout(QueryError):
    """The query ran past its timeout and was cancelled."""

    code = "query_timeout"


class ConnectionFailed(QueryError):
    """The queried database could not be reached or refused the credentials."""

    code = "connection_failed"


class ReadOnlyViolation(QueryError):
    """A read-only connection was asked to change data."""

    code = "read_only"


class StoreError(DancecatError):
    """The result store could not write or read a result."""

    code = "store"
