"""The HTML screens: thin views that read a form, call a service and render a template.

Every rule (who may see what, what a valid job is, when a schedule fires) lives in
``dancecat_core.services``; these modules only translate between forms and those calls.
"""
