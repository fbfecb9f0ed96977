"""The README's acoustics example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_acoustics_example_prints_its_documented_output() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## The acoustics library", 1)[1].split("\n## ", 1)[0]
    pairs = re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", section, flags=re.DOTALL)
    assert pairs, "the section has no example followed by its output"
    for code, expected in pairs:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(README), "exec"), {"__name__": "readme"})
        assert printed.getvalue() == expected
