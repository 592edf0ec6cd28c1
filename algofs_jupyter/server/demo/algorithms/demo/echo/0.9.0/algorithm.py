"""An older echo that tags text input, so version selection is observable."""


def apply(input):
    return f"0.9.0: {input}" if isinstance(input, str) else input
