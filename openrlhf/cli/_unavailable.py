"""Entry points whose feature has not landed yet exit with a clear message and a non-zero code."""

import sys


def not_available(command: str, issue: str) -> int:
    print(f"{command}: not available yet ({issue} has not landed in this version)", file=sys.stderr)
    return 2
