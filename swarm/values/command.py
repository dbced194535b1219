"""Command strings, split into words as Docker does (github.com/google/shlex)."""

from __future__ import annotations


def split_command(text: str) -> list[str]:
    """A command string split into words as Docker does (github.com/google/shlex): quotes,
    backslash escapes (any character, also inside double quotes) and # comments."""
    words: list[str] = []
    word: list[str] | None = None  # None between words
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if word is None:
            if char in " \t\r\n":
                i += 1
                continue
            if char == "#":  # a comment runs to the end of the line
                while i < n and text[i] != "\n":
                    i += 1
                continue
            word = []
        if char in " \t\r\n":
            words.append("".join(word))
            word = None
        elif char == "\\":
            if i + 1 >= n:
                raise ValueError(f"invalid command {text!r}: it ends with a backslash")
            i += 1
            word.append(text[i])
        elif char in "'\"":
            end = i + 1
            while True:
                if end >= n:
                    raise ValueError(f"invalid command {text!r}: a {char} quote is not closed")
                if text[end] == char:
                    break
                if char == '"' and text[end] == "\\":
                    end += 1
                    if end >= n:
                        raise ValueError(f"invalid command {text!r}: a {char} quote is not closed")
                word.append(text[end])
                end += 1
            i = end
        else:
            word.append(char)
        i += 1
    if word is not None:
        words.append("".join(word))
    return words
