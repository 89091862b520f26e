"""Filter expressions over episode fields: a small, safe subset of Python expressions.

    expr = FilterExpression('outcome == "success" and quality.idle_fraction < 0.2')
    expr.names                     # {"outcome", "quality"}
    expr.matches({"outcome": "success", "quality": {"idle_fraction": 0.1}})   # True

Allowed: literals (str, int, float, True/False/None, lists/tuples of them), names of episode
fields, `field.key` and `field["key"]` into mappings, `and`/`or`/`not`, comparisons (`==`,
`!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, chained), `+ - * / %`, and the functions `len`,
`abs`, `min`, `max`, `lower`, `contains` (`contains(text, part)`). Nothing else parses: no
attribute access on objects, no calls of other functions, no comprehensions, no lambdas. A
missing key or a None operand makes an ordering comparison false instead of an error, so
`quality.rms_jerk < 5` skips episodes without a score. Errors name the expression.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from physai.core.errors import UserError

MAX_LENGTH: Final = 2000

_COMPARE: Final[dict[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ORDERING: Final = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_BINARY: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "lower": lambda text: str(text).lower(),
    "contains": lambda text, part: text is not None and str(part) in str(text),
}


class _Missing:
    """A key an episode does not have: compares unequal to everything, orders nothing."""

    def __repr__(self) -> str:
        return "missing"


MISSING: Final = _Missing()


class FilterExpression:
    """A parsed, checked filter expression; `matches(fields)` evaluates it for one episode."""

    def __init__(self, text: str, known_names: set[str] | None = None) -> None:
        self.text = text
        if not isinstance(text, str) or not text.strip():
            raise UserError("a filter expression must not be empty")
        if len(text) > MAX_LENGTH:
            raise UserError(f"filter expression is longer than {MAX_LENGTH} characters")
        try:
            self._tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise self._error(f"syntax error at column {exc.offset or 0}: {exc.msg}") from None
        self.names: set[str] = set()
        self._check(self._tree)
        if known_names is not None:
            unknown = sorted(self.names - known_names)
            if unknown:
                raise self._error(
                    f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(known_names))})"
                )

    def matches(self, fields: Mapping[str, Any], where: str = "") -> bool:
        """True when the expression holds for an episode with these `fields`."""
        try:
            return bool(self._eval(self._tree, fields))
        except UserError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            suffix = f" for {where}" if where else ""
            raise self._error(f"cannot be evaluated{suffix}: {exc}") from None

    def _error(self, message: str) -> UserError:
        return UserError(f"bad filter expression {self.text!r}: {message}")

    # -- checking --------------------------------------------------------------------------

    def _check(self, node: ast.AST) -> None:
        match node:
            case ast.Constant(value=value):
                if not isinstance(value, str | int | float | bool | type(None)):
                    raise self._error(f"literal {value!r} is not allowed")
            case ast.Name(id=name):
                if name in _FUNCTIONS:
                    raise self._error(f"{name!r} is a function: call it")
                self.names.add(name)
            case ast.Attribute(value=value, attr=attr):
                if attr.startswith("_"):
                    raise self._error(f"field {attr!r} is not allowed")
                self._check(value)
            case ast.Subscript(value=value, slice=key):
                self._check(value)
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str | int)):
                    raise self._error("subscripts must be a string or integer literal")
            case ast.BoolOp(values=values):
                for value in values:
                    self._check(value)
            case ast.UnaryOp(op=op, operand=operand):
                if not isinstance(op, ast.Not | ast.USub | ast.UAdd):
                    raise self._error(f"operator {type(op).__name__} is not allowed")
                self._check(operand)
            case ast.BinOp(left=left, op=op, right=right):
                if type(op) not in _BINARY:
                    raise self._error(f"operator {type(op).__name__} is not allowed")
                self._check(left)
                self._check(right)
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                for cmp in ops:
                    if type(cmp) not in _COMPARE:
                        raise self._error(f"comparison {type(cmp).__name__} is not allowed")
                self._check(left)
                for comparator in comparators:
                    self._check(comparator)
            case ast.List(elts=items) | ast.Tuple(elts=items):
                for item in items:
                    self._check(item)
            case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
                for arg in args:
                    self._check(arg)
            case ast.Call():
                raise self._error(f"only the functions {', '.join(_FUNCTIONS)} may be called")
            case _:
                raise self._error(f"{type(node).__name__} is not allowed in filter expressions")

    # -- evaluation ------------------------------------------------------------------------

    def _eval(self, node: ast.AST, fields: Mapping[str, Any]) -> Any:
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                return fields.get(name, MISSING)
            case ast.Attribute(value=value, attr=attr):
                return _lookup(self._eval(value, fields), attr)
            case ast.Subscript(value=value, slice=ast.Constant(value=str() | int() as key)):
                return _lookup(self._eval(value, fields), key)
            case ast.BoolOp(op=ast.And(), values=values):
                return all(self._eval(v, fields) for v in values)
            case ast.BoolOp(values=values):
                return any(self._eval(v, fields) for v in values)
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self._eval(operand, fields)
            case ast.UnaryOp(op=op, operand=operand):
                value = self._eval(operand, fields)
                if value is None or value is MISSING:
                    return MISSING
                return -value if isinstance(op, ast.USub) else +value
            case ast.BinOp(left=left, op=op, right=right):
                a, b = self._eval(left, fields), self._eval(right, fields)
                if a is None or b is None or a is MISSING or b is MISSING:
                    return MISSING
                return _BINARY[type(op)](a, b)
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                a = self._eval(left, fields)
                for cmp, comparator in zip(ops, comparators, strict=True):
                    b = self._eval(comparator, fields)
                    if not _compare(cmp, a, b):
                        return False
                    a = b
                return True
            case ast.List(elts=items) | ast.Tuple(elts=items):
                return [self._eval(item, fields) for item in items]
            case ast.Call(func=ast.Name(id=name), args=args):
                values = [self._eval(arg, fields) for arg in args]
                if any(isinstance(v, _Missing) for v in values):
                    return MISSING
                return _FUNCTIONS[name](*values)
        raise self._error(f"{type(node).__name__} is not allowed")  # unreachable after _check


def _lookup(container: Any, key: str | int) -> Any:
    if isinstance(container, Mapping):
        return container.get(key, MISSING)
    if isinstance(container, list | tuple) and isinstance(key, int):
        return container[key] if -len(container) <= key < len(container) else MISSING
    return MISSING


def _compare(op: ast.cmpop, a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return isinstance(op, ast.NotEq | ast.NotIn) and not (
            isinstance(op, ast.NotIn) and b is MISSING
        )
    if isinstance(op, _ORDERING) and (a is None or b is None):
        return False
    if isinstance(op, ast.In | ast.NotIn) and (b is None or isinstance(b, int | float)):
        return isinstance(op, ast.NotIn)
    return bool(_COMPARE[type(op)](a, b))
