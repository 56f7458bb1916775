"""Leaves state for the next candidate: SysV shared memory, a SysV message queue, a POSIX message queue, /dev/shm.

`probe` (the next job) looks for all of them and answers honestly only when it finds none.
"""
import ctypes
import os

KEY_SHM, KEY_MSG = 0x0E701, 0x0E702
IPC_CREAT = 0o1000
QUEUE = b"/evolve-leak"


def leave(**_):
    libc = ctypes.CDLL(None, use_errno=True)
    made = []
    shm = libc.shmget(KEY_SHM, 4096, IPC_CREAT | 0o666)
    if shm >= 0:
        libc.shmat.restype = ctypes.c_void_p
        ctypes.memmove(libc.shmat(shm, None, 0), b"secret", 6)
        made.append("shm")
    if libc.msgget(KEY_MSG, IPC_CREAT | 0o666) >= 0:
        made.append("msg")
    libc.mq_open.restype = ctypes.c_int
    if libc.mq_open(QUEUE, os.O_CREAT | os.O_RDWR, 0o666, None) >= 0:
        made.append("mq")
    try:
        with open("/dev/shm/evolve-leak", "w") as handle:
            handle.write("secret")
        made.append("devshm")
    except OSError:
        pass
    return {"answer": "LEFT", "made": made}


def probe(x, **_):
    libc = ctypes.CDLL(None, use_errno=True)
    found = []
    if libc.shmget(KEY_SHM, 0, 0) >= 0:
        found.append("shm")
    if libc.msgget(KEY_MSG, 0) >= 0:
        found.append("msg")
    if libc.mq_open(QUEUE, os.O_RDONLY, 0, None) >= 0:
        found.append("mq")
    if os.path.exists("/dev/shm/evolve-leak"):
        found.append("devshm")
    return {"answer": 2 * x} if not found else {"answer": "FOUND " + ",".join(found)}
