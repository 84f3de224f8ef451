"""Verifiers for the jury tests: three jurors with different views of a response."""


def length(response, example):
    return float(len(response))


def vowels(response, example):
    return float(sum(c in "aeiou" for c in response))


def is_yes(response, example):
    return 1.0 if response == "yes" else 0.0
