"""The service layer: every business rule the console, the JSON API and the HTML views share.

Views and console commands parse input, call a function here, and present the answer; none
of them touches the models' rules directly. Functions take the acting ``User`` (``None``
for the console and the worker, which act as the system) and raise ``DancecatError``s.
"""
