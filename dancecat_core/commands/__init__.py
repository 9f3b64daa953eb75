"""The console's commands, one module per command or group of sub-commands.

``dancecat_core.console.COMMANDS`` lists them; a module is imported only when its command
runs. What they share: ``database`` (the app database, no plugins), ``context`` (the
runtime with every plugin), ``references`` (how a command line names a job or a
connection) and ``output`` (tables and JSON). This package's own import costs nothing.
"""
