"""Query depth and alias limits, linear in the document's size.

Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` re-walk a fragment at every spread,
so a document of N fragments that each spread the next one twice costs 2^N: under a kilobyte
froze the server for seconds. These rules compute each fragment once (memoised), so their cost
is bounded by the document's size whatever its shape. A document nested beyond Python's
recursion limit is refused as too deeply nested rather than crashing.

Integer literals longer than any Int or ID argument accepts are refused when the document is
parsed (``refuse_long_int_literals``): graphql-core converts an Int literal with ``int()``, which
past Python's int-string limit (4300 digits) raises a ``ValueError`` that it reports as an
unexpected error, with a traceback (issue 11 item 6).

Depth counts nesting below the root fields (a root field is depth 0, as Strawberry counts);
introspection fields (``__schema`` ...) are left to graphql-core's own introspection depth rule.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    visit,
)
from graphql.validation import ValidationContext, ValidationRule
from strawberry.extensions import AddValidationRules

TOO_NESTED = "document too deeply nested"
# Digits of the longest integer literal a document may hold: an Int holds 10, an ID 19 (SPEC
# §2), so anything longer is out of range whatever it is for; far below Python's 4300.
MAX_INT_LITERAL_DIGITS = 100
_LONG_DIGITS = re.compile(f"[0-9]{{{MAX_INT_LITERAL_DIGITS + 1}}}")


class LongIntLiteral(GraphQLError):
    """A document that parsed but holds an integer literal longer than any argument accepts;
    ``document`` is the parsed document (so a caller can report this as a validation error
    of a document it has, rather than as a failed parse)."""

    def __init__(self, digits: int, node: IntValueNode, document: DocumentNode) -> None:
        super().__init__(f"Integer literal of {digits} digits is out of range.", node)
        self.document = document


class _LongIntLiterals(Visitor):
    def __init__(self, document: DocumentNode) -> None:
        super().__init__()
        self.document = document

    def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
        """Raise ``LongIntLiteral`` for a literal of more than ``MAX_INT_LITERAL_DIGITS``."""
        digits = len(node.value.lstrip("-"))
        if digits > MAX_INT_LITERAL_DIGITS:
            raise LongIntLiteral(digits, node, self.document)


def refuse_long_int_literals(query: str, document: DocumentNode) -> None:
    """Raise ``LongIntLiteral`` (a ``GraphQLError`` with the literal's location) if
    ``document``, parsed from ``query``, holds an integer literal of more than
    ``MAX_INT_LITERAL_DIGITS`` digits. Only a text with such a run of digits (in a literal, a
    string or a comment) is walked."""
    if _LONG_DIGITS.search(query):
        visit(document, _LongIntLiterals(document))


class _FragmentRule(ValidationRule):
    """A rule that evaluates each named fragment once: ``measure(selection_set)`` is the
    subclass's measure, memoised per fragment; cycles and unknown fragments measure 0 (the
    standard rules refuse them)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.fragments = {
            d.name.value: d
            for d in context.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, int] = {}
        self.visiting: set[str] = set()

    def measure(self, selection_set: SelectionSetNode | None) -> int:
        """The subclass's measure of a selection set (levels, aliases), fragments included."""
        raise NotImplementedError

    def _fragment(self, name: str) -> int:
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.visiting:
            return 0
        self.visiting.add(name)
        value = self.measure(fragment.selection_set)
        self.visiting.discard(name)
        self.memo[name] = value
        return value


@cache
def depth_limit_rule(max_depth: int) -> type[ValidationRule]:
    """A validation rule refusing operations nested deeper than ``max_depth`` levels."""
    cap = max_depth + 2  # any depth at or beyond the cap is "too deep"; no need to look further

    class DepthLimit(_FragmentRule):
        """Refuses operations deeper than the limit (see ``depth_limit_rule``)."""

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            try:
                levels = self.measure(node.selection_set)
            except RecursionError:
                self.report_error(GraphQLError(TOO_NESTED, [node]))
                return
            if levels - 1 > max_depth:
                name = node.name.value if node.name else "anonymous"
                self.report_error(
                    GraphQLError(f"'{name}' exceeds maximum operation depth of {max_depth}", [node])
                )

        def measure(self, selection_set: SelectionSetNode | None) -> int:
            return self._depth(selection_set, 0)

        def _depth(self, selection_set: SelectionSetNode | None, level: int) -> int:
            # Levels of fields below (and including) this selection set, capped.
            if selection_set is None:
                return 0
            if level >= cap:
                return cap
            best = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    if selection.name.value.startswith("__"):
                        continue
                    found = 1 + self._depth(selection.selection_set, level + 1)
                elif isinstance(selection, InlineFragmentNode):
                    found = self._depth(selection.selection_set, level)
                elif isinstance(selection, FragmentSpreadNode):
                    found = self._fragment(selection.name.value)
                else:  # pragma: no cover - no other selection kinds exist
                    continue
                best = max(best, found)
                if best >= cap:
                    return cap
            return best

    return DepthLimit


@cache
def alias_limit_rule(max_aliases: int) -> type[ValidationRule]:
    """A validation rule refusing documents whose operations, fragments expanded at every
    spread, hold more than ``max_aliases`` aliased fields (Strawberry's count and message)."""

    class AliasLimit(_FragmentRule):
        """Refuses documents with too many aliases (see ``alias_limit_rule``)."""

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            try:
                total = sum(
                    self.measure(d.selection_set)
                    for d in context.document.definitions
                    if isinstance(d, OperationDefinitionNode)
                )
            except RecursionError:
                context.report_error(GraphQLError(TOO_NESTED))
                return
            if total > max_aliases:
                context.report_error(GraphQLError(f"{total} aliases found. Allowed: {max_aliases}"))

        def measure(self, selection_set: SelectionSetNode | None) -> int:
            if selection_set is None:
                return 0
            total = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    total += (selection.alias is not None) + self.measure(selection.selection_set)
                elif isinstance(selection, InlineFragmentNode):
                    total += self.measure(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    total += self._fragment(selection.name.value)
            return total

    return AliasLimit


class DocumentLimiter(AddValidationRules):
    """Schema extension applying the depth and alias limits of this module."""

    def __init__(self, *, max_depth: int, max_aliases: int) -> None:
        super().__init__([depth_limit_rule(max_depth), alias_limit_rule(max_aliases)])
