"""A new algorithm, as the hosted service started one: replace apply() with your own code.

Build it (``algo.compile()``), call it by the build's hash, publish it: docs/algorithm-source.md.
"""


def apply(input):
    return f"hello {input}"
