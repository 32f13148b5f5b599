"""openrlhf-train (not available yet)."""

import sys

from openrlhf.cli._unavailable import not_available


def main() -> int:
    return not_available("openrlhf-train", "the trainer issue")


if __name__ == "__main__":
    sys.exit(main())
