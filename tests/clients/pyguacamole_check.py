#!/usr/bin/env python3
"""Check a guacd-compatible daemon with the third-party `pyguacamole` client (PyPI 0.11).

Does the SSH handshake the way pyguacamole does it (it sends an empty protocol version,
no timezone and no name), then reads instructions for up to --seconds, echoing every
`sync`, and asserts: `ready` received, at least one `sync`, at least one drawing
instruction, and no `error`.

    python tests/clients/pyguacamole_check.py --host 127.0.0.1 --port 4822 \
        --ssh-port 2222 --user guacr-pw --password guacr-test-pw

Exit status 0 with a one-line summary on success, 1 with a FAIL message otherwise.
Needs pyguacamole: scripts/clients-setup.sh installs it into
${GUACR_CLIENTS_DIR:-/var/tmp/guacr-clients}/venv; if it is not importable here, this
script re-runs itself with that venv's python.
"""

import argparse
import logging
import os
import socket
import sys
import time

PROG = "pyguacamole_check"

try:
    from guacamole.client import GuacamoleClient
    from guacamole.instruction import GuacamoleInstruction as Instruction
except ImportError:
    venv_py = os.path.join(
        os.environ.get("GUACR_CLIENTS_DIR", "/var/tmp/guacr-clients"), "venv", "bin", "python"
    )
    if os.path.exists(venv_py) and os.path.realpath(sys.executable) != os.path.realpath(venv_py) \
            and not os.environ.get("_PYGUAC_CHECK_REEXEC"):
        os.environ["_PYGUAC_CHECK_REEXEC"] = "1"
        os.execv(venv_py, [venv_py] + sys.argv)
    print(f"{PROG}: FAIL: pyguacamole is not installed (run scripts/clients-setup.sh, "
          f"then use {venv_py})", file=sys.stderr)
    sys.exit(1)

# Instructions that put pixels on a layer.
DRAWING = ("img", "png", "jpeg", "copy", "rect", "cfill", "transfer", "blob")
# Of these, `rect` only defines a path and `blob` only carries data; neither alone proves
# that something was drawn, so the check wants one of these:
PAINTING = ("img", "png", "jpeg", "copy", "cfill", "transfer")


class RecordingClient(GuacamoleClient):
    """GuacamoleClient that remembers every instruction it reads (handshake included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def read_instruction(self):
        inst = super().read_instruction()
        if inst is not None:
            self.seen.append(inst)
        return inst


def fail(msg, counts=None):
    extra = ""
    if counts:
        extra = " (received: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())) + ")"
    print(f"{PROG}: FAIL: {msg}{extra}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="daemon host")
    ap.add_argument("--port", type=int, default=4822, help="daemon port")
    ap.add_argument("--ssh-host", default="127.0.0.1", help="SSH server host (as seen by the daemon)")
    ap.add_argument("--ssh-port", type=int, default=2222)
    ap.add_argument("--user", default="guacr-pw")
    ap.add_argument("--password", default="guacr-test-pw")
    ap.add_argument("--seconds", type=float, default=15.0, help="how long to read at most")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each instruction opcode")
    a = ap.parse_args()
    # pyguacamole logs to stderr at INFO by default; keep the output to our summary.
    logging.getLogger("guacamole").setLevel(logging.DEBUG if a.verbose else logging.ERROR)

    counts = {}
    t0 = time.monotonic()
    client = RecordingClient(a.host, a.port, timeout=10)
    try:
        client.handshake(protocol="ssh", hostname=a.ssh_host, port=a.ssh_port,
                         username=a.user, password=a.password)
    except (OSError, socket.timeout) as e:
        fail(f"cannot connect/handshake with {a.host}:{a.port}: {e}")
    except Exception as e:  # GuacamoleError, InvalidInstruction, ...
        fail(f"handshake failed: {type(e).__name__}: {e}")

    for inst in client.seen:
        counts[inst.opcode] = counts.get(inst.opcode, 0) + 1
    if not client.seen or client.seen[0].opcode != "args":
        fail("first instruction from the daemon was not `args`", counts)
    after_connect = client.seen[1] if len(client.seen) > 1 else None
    if after_connect is None or after_connect.opcode != "ready":
        what = after_connect.encode()[:200] if after_connect is not None else "nothing"
        fail(f"expected `ready` after `connect`, got {what}", counts)
    if not client.id:
        fail("`ready` carried no connection id", counts)

    syncs_echoed = 0
    deadline = time.monotonic() + a.seconds
    reason = "timeout"
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            client.client.settimeout(left)
            try:
                inst = client.read_instruction()
            except socket.timeout:
                break
            if inst is None:
                reason = "connection closed by daemon"
                break
            op = inst.opcode
            counts[op] = counts.get(op, 0) + 1
            if a.verbose:
                print(f"  {op} {' '.join(str(x)[:40] for x in inst.args)}")
            if op == "error":
                fail(f"daemon sent error: {inst.encode()[:300]}", counts)
            if op == "sync":
                if not inst.args:
                    fail("`sync` without a timestamp", counts)
                client.send_instruction(Instruction("sync", inst.args[0]))
                syncs_echoed += 1
            if op == "disconnect":
                reason = "daemon sent disconnect"
                break
            painted = sum(counts.get(k, 0) for k in PAINTING)
            if counts.get("sync", 0) >= 2 and painted > 0:
                reason = "all seen"
                break
    except (OSError, ValueError) as e:
        fail(f"reading instructions failed: {type(e).__name__}: {e}", counts)
    except Exception as e:
        fail(f"bad instruction from daemon: {type(e).__name__}: {e}", counts)
    finally:
        try:
            client.send_instruction(Instruction("disconnect"))
            client.close()
        except Exception:
            pass

    elapsed = time.monotonic() - t0
    if counts.get("sync", 0) < 1:
        fail(f"no `sync` within {a.seconds:g}s ({reason})", counts)
    if sum(counts.get(k, 0) for k in PAINTING) < 1:
        fail(f"no drawing instruction ({'/'.join(PAINTING)}) within {a.seconds:g}s ({reason})",
             counts)

    summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"{PROG}: OK id={client.id} sync-echoed={syncs_echoed} "
          f"draw={sum(counts.get(k, 0) for k in DRAWING)} [{summary}] in {elapsed:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
