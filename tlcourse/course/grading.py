"""The grader's kernel client: channels that never wait on one poll for longer than a second.

nbgrader's grader (nbclient under nbconvert) waits for a cell's reply with one
``socket.poll(timeout)`` of the whole cell timeout. Under load, zmq's asyncio wake-up for a reply
that has already arrived can be missed (its file descriptor is edge-triggered): the kernel is
idle, the reply sits in the socket, and the grader waits the full 30 minutes (seen in CI and in
the hub's formgrader). Polling again every second checks the socket afresh, so such a reply is
read within a second. Named in the course's nbgrader settings (``homework.NBGRADER_SETTINGS``:
``AsyncKernelManager.client_factory``), for ``make homework`` and the hub's formgrader alike.
"""

import queue
import time

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type


class PatientChannel(AsyncZMQSocketChannel):
    """A channel whose ``get_msg`` polls in steps of at most a second until its timeout."""

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if await self.socket.poll(max(0, int(left * 1000))):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty


class GradingKernelClient(AsyncKernelClient):
    """An asyncio kernel client with patient shell, iopub and control channels."""

    shell_channel_class = Type(PatientChannel)
    iopub_channel_class = Type(PatientChannel)
    control_channel_class = Type(PatientChannel)
