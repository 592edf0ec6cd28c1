"""Pinky answers Brain's questions, in character. Deterministic: the same input, the same answer."""

import hashlib

PONDERING_ANSWERS = [
    "I think so, Brain, but where are we going to find rubber pants our size?",
    "I think so, Brain, but burlap chafes me so.",
    "I think so, Brain, but if we give peas a chance, won't the lima beans feel left out?",
    "I think so, Brain, but me and Pippi Longstocking... I mean, what would the children look like?",
    "I think so, Brain, but how will we get the Spice Girls into the paella?",
    "Uh, I think so, Brain, but balancing a family and a career... ooh, it's all too much for me.",
    "I think so, Brain, but Zero Mostel times anything will still give you Zero Mostel.",
    "Well, I think so, Brain, but I can't memorize a whole opera in Yiddish.",
]
OTHER_ANSWERS = ["Narf!", "Zort!", "Poit!", "Egad!", "Troz!"]


def apply(input):
    text = input if isinstance(input, str) else str(input)
    digest = int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)
    if "ponder" in text.lower():
        return PONDERING_ANSWERS[digest % len(PONDERING_ANSWERS)]
    return f"{OTHER_ANSWERS[digest % len(OTHER_ANSWERS)]} What are we going to do tonight, Brain?"
