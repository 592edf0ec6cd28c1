"""Returns its input unchanged: text stays text, JSON stays JSON, bytes stay bytes."""


def apply(input):
    return input
