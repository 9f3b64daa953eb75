"""DanceCat's engine: jobs, trackers, schedules, plugins and the result pipeline.

Everything the web app, the worker and the console share lives here, so that none of
them has to reach around it.
"""

__version__ = "0.1.0"
