"""Every input DanceCat accepts, declared once per object (see ``fields``).

``ConnectionInput``, ``JobInput``, ``ScheduleInput`` and ``TokenInput`` are what the
services take; the API body, the OpenAPI schemas, the HTML forms and the console flags are
derived from their declarations.
"""
