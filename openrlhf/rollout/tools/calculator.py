"""The calculator tool: an arithmetic expression evaluated exactly, never with ``eval``.

Numbers (int, float), + - * / // % ** and parentheses, parsed with :mod:`ast`; integer results stay exact.
Refused: anything else (names, calls, attributes), exponents above 64, results or operands past 1e60 in
size, expressions over 200 characters; each refusal is a :class:`ToolError` the model reads.
"""

from __future__ import annotations

import ast
import operator

from openrlhf.rollout.tools.base import Tool, ToolContext, ToolError, ToolResult

MAX_CHARS, MAX_EXPONENT, MAX_MAGNITUDE = 200, 64, 10**60
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"calculator: exponent {right} is over {MAX_EXPONENT}")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("calculator: division by zero") from None
        if isinstance(result, complex) or abs(result) > MAX_MAGNITUDE:
            raise ToolError("calculator: the result is too large or not a real number")
        return result
    raise ToolError(f"calculator: {type(node).__name__} is not allowed (numbers, + - * / // % ** and parentheses)")


def calculate(expression: str) -> str:
    """The value of ``expression`` as text: an int exactly, a float with up to 12 significant digits."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("calculator: expression must be a non-empty string")
    if len(expression) > MAX_CHARS:
        raise ToolError(f"calculator: the expression is over {MAX_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ToolError(f"calculator: cannot parse {expression!r}") from None
    value = _value(tree.body)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.12g}"
    return str(value)


def _run(arguments: dict, context: ToolContext) -> ToolResult:
    CALCULATOR.required(arguments)
    return ToolResult(calculate(arguments["expression"]))


CALCULATOR = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression (+ - * / // % ** and parentheses) exactly.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "for example 123 * 456"}},
        "required": ["expression"],
    },
    run=_run,
)
