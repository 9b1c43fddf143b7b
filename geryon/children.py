"""Child processes that must not outlive the process that started them.

A node's worker processes (unpacking disks for rcpu) and the servers `register` runs are
of no use once their parent is gone, and a parent killed with SIGKILL cannot stop them:
the kernel is asked to (Linux's PR_SET_PDEATHSIG) when the child starts.
"""

import ctypes
import signal


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child: be sent `sig` when the process that started us dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the child outlives us, as it would anywhere else
