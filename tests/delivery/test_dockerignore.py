"""tests/delivery/dockerignore.py against moby/patternmatcher's own test cases."""

from __future__ import annotations

import pytest

from tests.delivery.dockerignore import Matcher, Pattern, read_patterns

EXACT, PARENT, FAIL = "exact", "parent", "fail"  # matches itself / only through a parent / not

# patternmatcher_test.go TestMatches (POSIX cases).
CASES = [
    ("**", "file", EXACT),
    ("**", "file/", EXACT),
    ("**/", "file", EXACT),
    ("**/", "dir/file/", EXACT),
    ("**", "/", EXACT),
    ("**/**", "dir/file", EXACT),
    ("dir/**", "dir/file", EXACT),
    ("dir/**", "dir/dir2/file/", EXACT),
    ("**/dir", "dir", EXACT),
    ("**/dir", "dir/file", PARENT),
    ("**/dir2/*", "dir/dir2/file", EXACT),
    ("**/dir2/*", "dir/dir2/file/", PARENT),
    ("**/dir2/**", "dir/dir2/dir3/file", EXACT),
    ("**file", "file", EXACT),
    ("**file", "dir/dir/file", EXACT),
    ("**/file", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file.txt", EXACT),
    ("**/file*txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt*", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt2", "dir/dir/file.txt", FAIL),
    ("**/*.txt", "file.txt", EXACT),
    ("**/**/*.txt", "file.txt", EXACT),
    ("a**/*.txt", "a/file.txt", EXACT),
    ("a**/*.txt", "a/dir/dir/file.txt", EXACT),
    ("a/*.txt", "a/dir/file.txt", FAIL),
    ("a/*.txt", "a/file.txt", EXACT),
    ("a/*.txt**", "a/file.txt", EXACT),
    ("a[b-d]e", "ae", FAIL),
    ("a[b-d]e", "ace", EXACT),
    ("a[b-d]e", "aae", FAIL),
    ("a[^b-d]e", "aze", EXACT),
    (".*", ".foo", EXACT),
    (".*", "foo", FAIL),
    ("abc.def", "abcdef", FAIL),
    ("abc.def", "abc.def", EXACT),
    ("abc?def", "abcZdef", EXACT),
    ("abc?def", "abcdef", FAIL),
    ("**/foo/bar", "foo/bar", EXACT),
    ("**/foo/bar", "dir/dir2/foo/bar", EXACT),
    ("abc/**", "abc", FAIL),
    ("abc/**", "abc/def/ghi", EXACT),
    ("**/.foo", ".foo", EXACT),
    ("**/.foo", "bar.foo", FAIL),
    ("a(b)c/def", "a(b)c/def", EXACT),
    ("a(b)c/def", "a(b)c/xyz", FAIL),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", EXACT),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("a\\\\", "a\\", EXACT),
    ("a\\*b", "a*b", EXACT),
    ("a\\*b", "ab", FAIL),
    ("*", ".venv", EXACT),
    ("a*/b", "a/c/b", FAIL),
    ("a?b", "a/b", FAIL),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_a_pattern_matches_as_moby_does(pattern: str, path: str, expected: str) -> None:
    assert Pattern(pattern).match(path) == (expected == EXACT)
    assert Matcher([pattern]).excludes(path) == (expected != FAIL)


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["**", "!util/docker/web"], "util/docker/web/foo", False),
        (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
        (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3-py3-none-any.whl", False),
        (["!fileutils.go", "*.go"], "fileutils.go", True),
        (["*.go", "!fileutils.go"], "fileutils.go", False),
        (["docs", "!docs/README.md"], "docs/README.md", False),
        (["docs/", "!docs/README.md"], "docs/README.md", False),
        (["docs/*", "!docs/README.md"], "docs/other.md", True),
        (["*.go"], ".", False),
        ([], "any/path", False),
        # The shape of the images' ignore files: everything out, then a few paths back.
        (["*", "!common/src", "**/__pycache__"], "common/src/sonalyze/cli.py", False),
        (["*", "!common/src", "**/__pycache__"], "common/src/sonalyze/__pycache__/x.pyc", True),
        (["*", "!common/src", "**/__pycache__"], "common/pyproject.toml", True),
        (["*", "!common/src"], "lobby/src/sonalyze_lobby/app.py", True),
    ],
)
def test_the_last_matching_pattern_wins(patterns: list[str], path: str, excluded: bool) -> None:
    assert Matcher(patterns).excludes(path) == excluded


def test_an_ignore_file_is_read_as_moby_reads_it() -> None:
    lines = ["test1", "/test2", "/a/file/here", "", "lastfile", "# this is a comment"]
    text = "\n".join([*lines, "! /inverted/abs/path", "!", "! "])
    expected = ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"]
    assert read_patterns(text) == expected
    assert read_patterns("\ufeff  docs/  \n#!not a pattern\n") == ["docs"]


@pytest.mark.parametrize("pattern", ["!", "[", "a["])
def test_a_bad_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        Matcher([pattern])
