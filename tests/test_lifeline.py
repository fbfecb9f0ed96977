"""A process told to watch its parent stops once the parent is gone (sonalyze.lifeline)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil

# A parent that starts a watching child, prints the child's PID and then waits forever (the
# child says when it watches, on the same output). The child is told its parent's PID: were it
# to ask (getppid) once started, the parent might already be gone.
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from sonalyze.lifeline import child_environment
    env = {**os.environ, **child_environment()}
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env, start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(600)
    """
)
CHILD = textwrap.dedent(
    """
    import os, time
    from sonalyze.lifeline import PARENT_PID, watch_parent
    watch_parent(int(os.environ[PARENT_PID]), poll_s=0.05, grace_s=5)
    print("watching", flush=True)
    time.sleep(600)
    """
)
IGNORING_SIGTERM = CHILD.replace("import os, time", "import os, signal, time").replace(
    "watch_parent(", "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwatch_parent("
)


def started(code: str) -> tuple[subprocess.Popen[str], psutil.Process]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, code], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    assert parent.stdout.readline() == "watching\n"
    return parent, child


def test_a_child_stops_when_its_parent_is_killed() -> None:
    parent, child = started(CHILD)
    assert child.is_running()
    parent.kill()
    parent.wait()
    child.wait(30)  # raises if it still runs (its exit code is init's to read)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    parent, child = started(IGNORING_SIGTERM)
    parent.kill()
    parent.wait()
    killed = time.monotonic()
    child.wait(60)
    assert time.monotonic() - killed >= 5, "SIGTERM was ignored: SIGKILL after the grace"
