"""The app database's tables. Import models from here."""

from dancecat_core.models.accounts import AllowedEmail, ApiToken, SignInThrottle, User
from dancecat_core.models.catalogues import Catalogue, CatalogueTable
from dancecat_core.models.connections import Connection
from dancecat_core.models.job_urls import PullUrl, PullUse, Trigger
from dancecat_core.models.jobs import Job, JobRecipient, RunAfter
from dancecat_core.models.locks import AppLock
from dancecat_core.models.meta import Base, utcnow
from dancecat_core.models.schedules import CatchUp, Schedule, ScheduleType
from dancecat_core.models.trackers import (
    FINISHED,
    Alert,
    AlertKind,
    Notification,
    NotificationStatus,
    ResultChunk,
    Tracker,
    TrackerStatus,
    check_transition,
)

__all__ = [
    "FINISHED",
    "Alert",
    "AlertKind",
    "AllowedEmail",
    "ApiToken",
    "AppLock",
    "Base",
    "Catalogue",
    "CatalogueTable",
    "CatchUp",
    "Connection",
    "Job",
    "JobRecipient",
    "Notification",
    "NotificationStatus",
    "PullUrl",
    "PullUse",
    "ResultChunk",
    "RunAfter",
    "Schedule",
    "ScheduleType",
    "SignInThrottle",
    "Tracker",
    "TrackerStatus",
    "Trigger",
    "User",
    "check_transition",
    "utcnow",
]
