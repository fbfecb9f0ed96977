"""Which files of a build context a .dockerignore admits, as BuildKit decides it.

A port of moby/patternmatcher (``ignorefile.ReadAll``, ``Pattern.compile``/``match`` and
``MatchesOrParentMatches``) for slash-separated paths: Go ``filepath.Match`` wildcards (``*`` and
``?`` stop at ``/``, ``[...]`` classes, ``\\`` escapes), ``**`` for any number of directories,
``!`` exceptions, the last matching pattern wins, and a pattern that matches a parent directory
matches everything under it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable


def read_patterns(text: str) -> list[str]:
    """The patterns of an ignore file (``ignorefile.ReadAll``): comment lines and blank lines
    dropped, each pattern trimmed and cleaned, a leading ``/`` removed."""
    patterns = []
    for line in text.removeprefix("\ufeff").splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _clean(path: str) -> str:
    """Go's ``filepath.Clean`` (POSIX ``normpath`` keeps a leading ``//``; Go does not)."""
    path = posixpath.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("/") else path


class Pattern:
    """One pattern, matched as moby matches it (exact, prefix, suffix or regexp)."""

    def __init__(self, pattern: str) -> None:
        self.exclusion = pattern.startswith("!")
        if self.exclusion:
            pattern = pattern[1:]
            if not pattern:
                raise ValueError('illegal exclusion pattern: "!"')
        self.pattern = _clean(pattern)
        self.kind, regex = _compile(self.pattern)
        try:
            self.regex = re.compile(regex)
        except re.error as error:
            raise ValueError(f"bad pattern {pattern!r}: {error}") from error

    def match(self, path: str) -> bool:
        """Whether ``path`` itself (no parent) matches."""
        if self.kind == "exact":
            return path == self.pattern
        if self.kind == "prefix":
            return path.startswith(self.pattern[:-2])
        if self.kind == "suffix":
            suffix = self.pattern[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self.regex.match(path) is not None


def _compile(pattern: str) -> tuple[str, str]:
    """moby's ``Pattern.compile``: the kind of match and, for ``regexp``, the expression."""
    regex, kind, i = "^", "exact", 0
    while i < len(pattern):
        ch, start = pattern[i], i
        i += 1
        if ch == "*" and pattern[i : i + 1] == "*":
            i += 1
            if pattern[i : i + 1] == "/":  # "**/" is "**"
                i += 1
            if i == len(pattern):  # a trailing "**" takes everything
                if kind == "exact":
                    kind = "prefix"
                else:
                    regex, kind = regex + ".*", "regexp"
            else:
                regex, kind = regex + "(.*/)?", "regexp"
            if start == 0:
                kind = "suffix"
        elif ch == "*":
            regex, kind = regex + "[^/]*", "regexp"
        elif ch == "?":
            regex, kind = regex + "[^/]", "regexp"
        elif ch in ".+()|{}$":
            regex += "\\" + ch
        elif ch == "\\":
            if i < len(pattern):
                regex, kind = regex + re.escape(pattern[i]), "regexp"
                i += 1
            else:
                regex += "\\\\"
        elif ch in "[]":
            regex, kind = regex + ch, "regexp"
        else:
            regex += ch
    return kind, regex + r"\Z"


class Matcher:
    """An ignore file's patterns, in order."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [Pattern(p) for p in patterns]

    @classmethod
    def from_text(cls, text: str) -> Matcher:
        return cls(read_patterns(text))

    def excludes(self, path: str) -> bool:
        """``MatchesOrParentMatches``: whether the context leaves ``path`` out."""
        path = _clean(path)
        if path == ".":
            return False
        parents = posixpath.dirname(path).split("/") if "/" in path else []
        excluded = False
        for pattern in self.patterns:
            if pattern.exclusion != excluded:  # only a later pattern of the other sign counts
                continue
            if pattern.match(path) or any(
                pattern.match("/".join(parents[: n + 1])) for n in range(len(parents))
            ):
                excluded = not pattern.exclusion
        return excluded

    def admitted(self, paths: Iterable[str]) -> list[str]:
        """The paths the context keeps."""
        return [path for path in paths if not self.excludes(path)]
