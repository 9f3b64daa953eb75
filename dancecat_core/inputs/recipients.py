"""A recipient as typed anywhere: ``DESTINATION [when RULE] [if CONDITION]``.

DESTINATION is an email address or a URL (``dancecat_core.destinations``).

One text form for the console, the job form and the API, so no channel can spell a rule
differently: ``ops@example.com``, ``ops@example.com when rows``,
``ops@example.com when changed if total >= 100``, ``ops@example.com if "Order status" =
'stuck'``. The console's ``--send-when``/``--condition`` flags add those words to the
``--recipient`` before them (``inputs.console``).
"""

from __future__ import annotations

import re
from typing import Any

from dancecat_core import destinations
from dancecat_core.delivery_rules import RULE_HELP, RecipientRule, SendWhen, parse_condition
from dancecat_core.errors import ValidationError
from dancecat_core.services import validation

_LINE = re.compile(
    r"^\s*(?P<email>\S+)(?:\s+when\s+(?P<rule>\S+))?(?:\s+if\s+(?P<condition>.+?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
RULES = tuple(rule.value for rule in SendWhen)
GRAMMAR_HELP = (
    "One per entry: DESTINATION [when RULE] [if CONDITION]; DESTINATION: an email address, "
    "a webhook (https://…), a chat (slack://…, workflows://… for Teams, discord://…: apprise "
    "URLs) or a folder (file:///path/), secrets kept encrypted and shown as ***; ?format=FORMAT "
    "picks an email's attachment or a folder's file. RULE: "
    + "; ".join(f"{rule.value}: {text}" for rule, text in RULE_HELP.items())
    + ". CONDITION: rows > 0, or a column of the first row: total >= 100, "
    "\"Order status\" = 'stuck'."
)


def parse_recipient(raw: Any, field: str, label: str, runtime: Any = None) -> RecipientRule:
    """One entry; its destination is checked by the notifier of its scheme
    (``destinations.check``, with the runtime's notifiers; without a runtime, only an
    email address is accepted)."""
    if not isinstance(raw, str):
        raise ValidationError(f"{label} must be a list of texts: EMAIL [when RULE]", field)
    match = _LINE.match(raw)
    if match is None:
        raise ValidationError(f"{label}: an entry is empty", field)
    if runtime is None:
        address = validation.email(match["email"], field, label=label)
    else:
        try:
            address = destinations.check(runtime.notifiers, match["email"])
        except ValidationError as error:
            raise ValidationError(f"{label}: {error}", field) from None
    rule_text = (match["rule"] or SendWhen.ALWAYS.value).lower()
    if rule_text not in RULES:
        raise ValidationError(
            f"{label}: {address}: send when must be one of {', '.join(RULES)}", field
        )
    rule = SendWhen(rule_text)
    condition = None
    if match["condition"]:
        condition = parse_condition(match["condition"], field, f"{label}: {address}: condition")
        if rule is SendWhen.FAILED:
            raise ValidationError(
                f"{label}: {address}: a condition needs a rule that sends results, not failed",
                field,
            )
    return RecipientRule(address, rule, condition)


def recipient_list(
    value: Any, field: str, *, label: str, runtime: Any = None
) -> list[RecipientRule]:
    """Distinct destinations in the order given (a repeated one: its first entry)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{label} must be a list of email addresses", field)
    found: dict[str, RecipientRule] = {}
    refused: list[ValidationError] = []
    for item in value:
        try:
            rule = parse_recipient(item, field, label, runtime)
        except ValidationError as error:
            refused.append(error)
            continue
        found.setdefault(rule.destination, rule)
    if len(refused) == 1:
        raise refused[0]
    if refused:
        # Every refused entry at once (the form marks each of their inputs), one label.
        parts = [str(error).removeprefix(f"{label}: ") for error in refused]
        raise ValidationError(f"{label}: {'; '.join(parts)}", field)
    return list(found.values())
