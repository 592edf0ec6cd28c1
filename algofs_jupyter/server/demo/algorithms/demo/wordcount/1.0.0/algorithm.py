"""Counts words: text in, {"words", "lines", "characters", "top"} out. Prints a progress line."""

import collections
import re


def apply(input):
    if isinstance(input, bytes):
        input = input.decode("utf-8")
    if not isinstance(input, str):
        raise TypeError("wordcount expects text")
    words = re.findall(r"[\w']+", input.lower())
    print(f"counting {len(words)} words")
    top = collections.Counter(words).most_common(5)
    return {
        "words": len(words),
        "lines": len(input.splitlines()),
        "characters": len(input),
        "top": [[word, count] for word, count in top],
    }
