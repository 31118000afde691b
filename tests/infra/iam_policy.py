"""A small evaluator of IAM identity-based policies, for the deploy-role permission test.

What it implements is what the stack's policies use, following AWS's policy evaluation logic
for a single identity-based policy (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

1. an explicit Deny in any matching statement wins;
2. else an Allow in any matching statement allows;
3. else the request is implicitly denied.

A statement matches when its Action (or NotAction) matches the action, its Resource (or
NotResource) matches the resource, and every condition holds. Action names match
case-insensitively, resources case-sensitively; ``*`` and ``?`` are wildcards in both
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html).

Conditions: the operators below, each key's values OR-ed, keys and operators AND-ed; a key the
request does not carry fails a positive operator and satisfies a negated one
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
An operator not listed raises, so a policy using one fails the test instead of being guessed at.
Not modelled (the stack's policies use none): policy variables, ForAllValues/ForAnyValue,
IfExists, numeric and date operators, resource-based policies, boundaries and SCPs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class Decision(str, Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny (no statement allows it)"


@dataclass(frozen=True)
class Request:
    """One permission AWS checks: an IAM action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _matches_any(patterns, value: str, *, ignore_case: bool) -> bool:
    return any(_wildcard(p, ignore_case=ignore_case).match(value) for p in _as_list(patterns))


def _string_equals(values, actual: str) -> bool:
    return actual in _as_list(values)


def _string_like(values, actual: str) -> bool:
    return _matches_any(values, actual, ignore_case=False)


def _bool(values, actual: str) -> bool:
    return actual.lower() in [str(v).lower() for v in _as_list(values)]


# operator -> (test on a present key, negated)
_OPERATORS = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_equals, False),
    "ArnLike": (_string_like, False),
    "ArnNotEquals": (_string_equals, True),
    "ArnNotLike": (_string_like, True),
    "Bool": (_bool, False),
}


def _condition_holds(operator: str, key: str, values, context: Mapping[str, str]) -> bool:
    if operator == "Null":
        absent = key not in context
        return _bool(values, "true" if absent else "false")
    if operator not in _OPERATORS:
        raise NotImplementedError(f"condition operator {operator} is not modelled by tests/infra/iam_policy.py")
    test, negated = _OPERATORS[operator]
    # Condition keys are case-insensitive; values are compared as given.
    present = {k.lower(): v for k, v in context.items()}
    if key.lower() not in present:
        return negated
    holds = test(values, present[key.lower()])
    return not holds if negated else holds


def _element_matches(statement: Mapping, element: str, value: str, ignore_case: bool, missing: str) -> bool:
    """``Action``/``NotAction`` or ``Resource``/``NotResource``: whether ``value`` is covered."""
    if element in statement:
        return _matches_any(statement[element], value, ignore_case=ignore_case)
    if "Not" + element in statement:
        return not _matches_any(statement["Not" + element], value, ignore_case=ignore_case)
    raise ValueError(f"{missing}: {statement}")


def _statement_matches(statement: Mapping, request: Request) -> bool:
    if not _element_matches(
        statement, "Action", request.action, True, "statement without Action or NotAction"
    ):
        return False
    if not _element_matches(
        statement, "Resource", request.resource, False, "identity-based statement without Resource or NotResource"
    ):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, values in keys.items():
            if not _condition_holds(operator, key, values, request.context):
                return False
    return True


def evaluate(policy: Mapping, request: Request) -> Decision:
    """The decision of one identity-based policy document for one request."""
    statements = _as_list(policy["Statement"])
    matching = [s for s in statements if _statement_matches(s, request)]
    if any(s["Effect"] == "Deny" for s in matching):
        return Decision.EXPLICIT_DENY
    if any(s["Effect"] == "Allow" for s in matching):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def without_action(policy: Mapping, action: str) -> dict:
    """A copy of ``policy`` with ``action`` removed from every Allow statement's Action list."""
    statements = []
    for statement in _as_list(policy["Statement"]):
        statement = dict(statement)
        if statement["Effect"] == "Allow" and "Action" in statement:
            kept = [a for a in _as_list(statement["Action"]) if a.lower() != action.lower()]
            if not kept:
                continue
            statement["Action"] = kept
        statements.append(statement)
    return {**policy, "Statement": statements}
