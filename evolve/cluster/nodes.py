"""The cluster's membership, watched in one place: which nodes are alive, and with how many CPUs.

Two parts of a run need to hear when a node joins or leaves the Ray cluster: the cluster sandbox
(evolve/cluster/sandbox.py) starts a worker on a node that joins and stops sending work to one that
leaves, and the pool of node verifiers (evolve/cluster/verify.py) checks a node that joins before it
judges there. One NodeRegistry per run asks Ray every POLL_SECONDS and tells each of its watchers
what changed since that watcher last heard: `joined(member)`, `left(node_id)`.

Each watcher has its own view (`Watch.known`): it says which nodes it has already dealt with when it
starts watching (the ones it saw at start-up), and it may `forget` a node it gave up on while Ray
still lists it (its worker crashed on a live node): at the next poll it hears that node joined again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from evolve.cluster.connect import first_line

log = logging.getLogger("evolve.cluster")
POLL_SECONDS = 2.0  # how often the cluster is asked which nodes are alive (joins and departures)


@dataclass(frozen=True)
class Member:
    """An alive node of the cluster, as Ray lists it."""

    node_id: str
    host: str  # its address in the cluster ("?" when Ray does not say)
    cpus: float  # the CPUs Ray gives it; 0 on a head started with --num-cpus=0, which is meant to run nothing


Joined = Callable[[Member], None]
Left = Callable[[str], None]


@dataclass(eq=False)
class Watch:
    """One watcher's view of the cluster: the nodes it knows of, and what it is told of the others."""

    joined: Joined
    left: Left | None  # None: this watcher does not act on departures
    known: set[str] = field(default_factory=set)

    def forget(self, node_id: str) -> None:
        """Hear of `node_id` again (as joined) at the next poll if Ray still lists it alive."""
        self.known.discard(node_id)

    def update(self, alive: dict[str, Member]) -> None:
        """Tell the watcher which known nodes are gone, then which alive ones are new to it."""
        for node_id in [node_id for node_id in self.known if node_id not in alive]:
            self.known.discard(node_id)
            if self.left is not None:
                self.left(node_id)
        for node_id, member in alive.items():
            if node_id not in self.known:
                self.known.add(node_id)
                self.joined(member)


class NodeRegistry:
    """Polls the cluster's membership and tells its watchers (callbacks run in the event loop's thread)."""

    def __init__(self, ray: Any, period: float = POLL_SECONDS) -> None:
        self.ray = ray
        self.period = period
        self._watches: list[Watch] = []
        self._poller: asyncio.Task | None = None
        self._closed = False

    def alive(self) -> dict[str, Member]:
        """The nodes alive now, by id, in Ray's order (blocking: it asks Ray)."""
        return {info["NodeID"]: Member(info["NodeID"], str(info.get("NodeManagerAddress", "?")),
                                       float(info.get("Resources", {}).get("CPU", 0)))
                for info in self.ray.nodes() if info.get("Alive")}

    def watch(self, joined: Joined, left: Left | None = None, known: Iterable[str] = ()) -> Watch:
        """From the next poll on, `left(node_id)` for each node of `known` that is gone and `joined(member)` for
        each alive node not in `known`. Polling starts with the first watch (call it in the running loop)."""
        watch = Watch(joined, left, set(known))
        if self._closed:
            return watch
        self._watches.append(watch)
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        return watch

    def unwatch(self, watch: Watch) -> None:
        if watch in self._watches:
            self._watches.remove(watch)

    def close(self) -> None:
        """Stop polling; no watcher hears anything more."""
        self._closed = True
        self._watches.clear()
        if self._poller is not None:
            self._poller.cancel()

    async def _poll(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.period)
            try:
                alive = await asyncio.to_thread(self.alive)
            except Exception as error:  # noqa: BLE001 - the head may be restarting; ask again later
                log.warning("cluster: cannot list the nodes (%s)", first_line(error))
                continue
            for watch in list(self._watches):
                try:
                    watch.update(alive)
                except Exception:  # noqa: BLE001 - one watcher's fault must not leave the others unaware
                    log.exception("cluster: a watcher of the cluster's nodes failed")
