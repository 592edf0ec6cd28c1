"""The first Pinky: he only knows one word."""


def apply(input):
    return "Narf!"
