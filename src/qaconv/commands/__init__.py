"""Sub-commands of the `qaconv` CLI: one module each, exposing `register(subparsers)`; shared argument types."""


def comma_list(text: str) -> list[str]:
    """argparse type of comma-separated names: 'a, b,' -> ['a', 'b'] ('' -> [])."""
    return [part.strip() for part in text.split(",") if part.strip()]
