"""Always fails with a message, to show how algorithm errors travel."""


def apply(input):
    raise ValueError(f"demo/fail always fails (input was {input!r})")
