"""kill -9 of a process writing decisions loses no acknowledged decision and leaves a sound file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlagent.serving.interaction_log import InteractionLog

REPO = Path(__file__).resolve().parents[2]

# Two worker threads append batches of decisions to their own session and print, after each
# record_decisions call returns, the ids it acknowledged; the main thread waits forever.
WRITER = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    from rlagent.serving.interaction_log import DecisionRecord, InteractionLog

    log = InteractionLog(sys.argv[1], model_hash="m", env_id="rlagent/CustomerService-v0",
                         env_kwargs={}, synchronous=sys.argv[2])
    out = threading.Lock()

    def work(sid):
        log.start_session(sid, kind="customer_service")
        step = 0
        while True:
            rows = []
            for _ in range(1 + step % 3):
                obs = {"request": f"turn {step}", "features": np.full(4, step / 7, np.float32)}
                rows.append(DecisionRecord(sid, step, time.time(), obs, obs["request"], step % 2,
                                           f"a{step % 2}", [0.25, 0.75], None, "m"))
                step += 1
            log.record_decisions(rows)
            with out:
                for row in rows:
                    sys.stdout.write(f"{sid} {row.step}\\n")
                sys.stdout.flush()

    for sid in ("a", "b"):
        threading.Thread(target=work, args=(sid,), daemon=True).start()
    threading.Event().wait()
    """
)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sigkill_loses_no_acknowledged_decision(tmp_path, synchronous):
    path = tmp_path / "log.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), synchronous],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    acknowledged = []
    deadline = time.monotonic() + 60
    try:
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged.append(line.split())
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    acknowledged += [line.split() for line in rest.splitlines()]
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 50, f"the writer acknowledged too little before the kill: {err}"

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    log = InteractionLog.for_reading(path)
    stored = {(d.session_id, str(d.step)) for d in log.decisions()}
    log.close()
    missing = [tuple(ack) for ack in acknowledged if tuple(ack) not in stored]
    assert not missing, f"acknowledged but not in the log: {missing[:5]}"
    # The log opens for writing again and takes more decisions.
    with InteractionLog(
        path, model_hash="m2", env_id="rlagent/CustomerService-v0", env_kwargs={}
    ) as log:
        log.start_session("after", kind="customer_service")
        assert len(log.sessions()) == 3
