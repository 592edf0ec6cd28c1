"""Sleeps for the number of seconds given as input (text or JSON number), to exercise timeouts."""

import time


def apply(input):
    seconds = float(input)
    print(f"sleeping {seconds:g} s")
    time.sleep(seconds)
    return f"slept {seconds:g} seconds"
