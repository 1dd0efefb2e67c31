"""An in-process Flower engine: a ServerApp and a ClientApp in this process, no Ray, no start-up.

Flower's simulation engine starts Ray (≈8 s here) and ships every message, and every node's
Context, to an actor process and back. Peel's agencies are small models on two cores, so that
machinery costs more than the training. `run_in_process` keeps Flower's contract and drops the
machinery: `InProcessGrid` implements Flower 1.42's `Grid` and delivers each message to the
ClientApp synchronously, in the calling thread, with one persistent `Context` per virtual node.

What is kept exactly as Flower's engines do it:
- Nodes: random 64-bit node ids; node_config {partition-id, num-partitions}; one Context per node
  whose `state` persists across rounds; run_config from the caller (the same for every node and
  the ServerApp; it may not be modified by a ClientApp).
- Messages: instructions validated as Flower's LinkState validates them (an invalid one is logged
  and not stored, so it gets no reply); message ids are uuid4 strings, as in the simulation
  engine; replies are built by the ClientApp with `Message(..., reply_to=msg)`, so `reply_to`,
  `src/dst` node ids, group id and TTL are Flower's own; `delivered_at` is stamped on delivery
  and on pull; an instruction whose TTL has expired gets Flower's MESSAGE_UNAVAILABLE error reply.
- Failures: an exception in the ClientApp becomes an error reply (code
  CLIENT_APP_RAISED_EXCEPTION, reason "<class ...>:<'message'>" as a SuperNode writes it), logged,
  and the run goes on; the strategy sees it with `Message.has_error()`.
- Wire copies: every message goes through Flower's own protobuf serialisation of a whole Message
  (`flwr.common.serde`: to bytes and back), so server and client never share an object and
  `grid.run.bytes_sent` / `bytes_recv` count real message bytes. For Peel's default model that
  is ≈0.2 ms per message (Flower's newer object-tree format, deflate/inflate per Array, took
  ≈0.6 ms; see docs/performance.md); `serialise=False` turns it off.

What differs, on purpose:
- One message at a time, in push order (Flower's Ray backend with 2 CPUs per ClientApp also runs
  one at a time on this machine). The legacy API's threads may call the grid concurrently: a
  lock serialises deliveries.
- Timeouts: a running ClientApp cannot be interrupted in-process. `send_and_receive(timeout=T)`
  delivers messages until T seconds have passed; a reply that finishes after T is dropped, and
  messages not yet delivered by then are never delivered (their nodes do not run them). The
  ServerApp sees what Flower's grid shows it: only the replies that arrived within T. (Flower
  would still run the late messages in the background, spending the nodes' time for nothing.)
- A ClientApp that returns something that is not a valid reply to the message gets an error
  reply (code UNKNOWN) saying so, instead of Flower's silent drop and a wait for the timeout.
- Peel's audit trail (`run_federated_in_process`): entries are fsynced once per hand-over
  between the ServerApp and the nodes, before any message crosses, instead of once per entry
  (`privacy.audit_trail.deferred_sync`); Flower's engines have no such hook, there each entry is
  fsynced before its ClientApp returns.
- A ClientApp that raises keeps the changes it made to its Context before raising (a Ray actor
  would lose them with its copy). For a DP agency that records its spend before training this is
  the safe side: a crash over-counts ε, never under-counts it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import (
    NODE_ID_NUM_BYTES,
    NUM_PARTITIONS_KEY,
    PARTITION_ID_KEY,
    RUN_ID_NUM_BYTES,
    SUPERLINK_NODE_ID,
    TASK_ID_NUM_BYTES,
    ErrorCode,
)
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module
from flwr.server.superlink.linkstate.utils import (
    create_message_error_unavailable_ins_message,
    create_message_error_unavailable_res_message,
    generate_rand_int_from_bytes,
    message_ttl_has_expired,
)
from flwr.server.utils.validator import validate_message
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.date import now
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

log = logging.getLogger("peel.engine")

UserConfig = dict[str, bool | int | float | str]


def wire_copy(message: Message) -> tuple[Message, int]:
    """`message` as the receiving side rebuilds it from Flower's protobuf serialisation of a
    whole Message (flwr.common.serde), and the number of bytes that took."""
    data = message_to_proto(message).SerializeToString()
    return message_from_proto(ProtoMessage.FromString(data)), len(data)


def _raised_reply(message: Message, exc: BaseException) -> Message:
    # The reason a SuperNode writes for a ClientApp exception (flwr.supernode.runtime).
    reason = str(type(exc)) + ":<'" + str(exc) + "'>"
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)


def _invalid_reply(message: Message, problem: str) -> Message:
    return Message(Error(code=ErrorCode.UNKNOWN, reason=f"ClientApp returned an invalid reply: {problem}"), reply_to=message)


class InProcessGrid(Grid):
    """A Flower `Grid` whose nodes are virtual: each message is handed to `client_app` with the
    destination node's persistent Context, in this process. See the module docstring."""

    def __init__(
        self,
        client_app: ClientApp,
        num_nodes: int,
        run_config: UserConfig | None = None,
        *,
        serialise: bool = True,
        before_handover: Callable[[], None] | None = None,
    ) -> None:
        if num_nodes < 1:
            raise ValueError(f"in-process engine: num_nodes must be at least 1, got {num_nodes}")
        self.client_app = client_app
        self.serialise = serialise
        # Called whenever messages cross between the ServerApp and the nodes (as the ServerApp
        # pushes them, and before replies are handed to it): Peel syncs its audit trail here.
        self.before_handover = before_handover or (lambda: None)
        self.run_config: UserConfig = dict(run_config or {})
        run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
        run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
        run.federation_id = NOOP_FEDERATION_ID
        self._run = run
        self.contexts: dict[int, Context] = {}
        taken = {0, SUPERLINK_NODE_ID}
        for partition in range(num_nodes):
            node_id = generate_rand_int_from_bytes(NODE_ID_NUM_BYTES, exclude=taken)
            taken.add(node_id)
            self.contexts[node_id] = Context(
                run_id=run.run_id,
                node_id=node_id,
                node_config={PARTITION_ID_KEY: partition, NUM_PARTITIONS_KEY: num_nodes},
                state=RecordDict(),
                run_config=dict(self.run_config),
            )
        self._pending: dict[str, Message] = {}  # instruction id -> message not yet delivered
        self._delivered: dict[str, Message] = {}  # instruction id -> message delivered, reply not yet pulled
        self._replies: dict[str, Message] = {}  # instruction id -> reply not yet pulled
        self._lock = threading.RLock()

    # -- the Grid interface -------------------------------------------------------------

    def set_run(self, run: Run) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be an instance of Run, got {type(run).__name__}")
        if run.run_id != self._run.run_id:
            raise RuntimeError(f"Cannot find the run with ID: {run.run_id}")
        self._run = run

    @property
    def run(self) -> Run:
        return Run(**vars(self._run))

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None) -> Message:
        # Deprecated in Flower 1.42 (use the Message constructor); kept for older ServerApps.
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Store each valid message for its node and return its id; delivery happens when the
        ServerApp pulls (or in `send_and_receive`)."""
        ids: list[str] = []
        with self._lock:
            self.before_handover()  # what the coordinator recorded is durable before its messages leave
            for msg in messages:
                msg.metadata.__dict__["_message_id"] = str(uuid4())
                md = msg.metadata
                # Flower's grid raises on these; its LinkState logs and drops the rest.
                if not (md.message_id and md.reply_to_message_id == "" and md.ttl > 0 and md.delivered_at == ""):
                    raise ValueError(f"Invalid message: {msg}")
                problems = validate_message(msg, is_reply_message=False)
                if md.run_id != self._run.run_id:
                    problems.append(f"invalid run ID {md.run_id}")
                if md.dst_node_id not in self.contexts:
                    problems.append(f"invalid destination node ID {md.dst_node_id}")
                if problems:
                    log.error("message not sent: %s", "; ".join(problems))
                    continue
                if self.serialise:
                    msg, size = wire_copy(msg)
                    self._run.bytes_sent += size
                self._pending[md.message_id] = msg
                ids.append(md.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """The replies to `message_ids`, delivering any of them not yet delivered first. Each
        reply is returned once (then forgotten, with its instruction), as Flower's grid does."""
        ids = list(dict.fromkeys(message_ids))
        with self._lock:
            for message_id in ids:
                if message_id in self._pending:
                    self._deliver(message_id)
            return self._collect(ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """Push, deliver in order until `timeout` seconds have passed, and return the replies
        that arrived in time (see the module docstring on timeouts)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            ids = self.push_messages(messages)
            in_time: list[str] = []
            for message_id in ids:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._deliver(message_id)
                if deadline is None or time.monotonic() < deadline:
                    in_time.append(message_id)
            replies = self._collect(in_time)
            # Nobody else holds these ids: forget what was not delivered or arrived late.
            for message_id in ids:
                self._pending.pop(message_id, None)
                self._delivered.pop(message_id, None)
                self._replies.pop(message_id, None)
            return replies

    # -- delivery -----------------------------------------------------------------------

    def _deliver(self, message_id: str) -> None:
        msg = self._pending.pop(message_id)
        self._delivered[message_id] = msg
        if message_ttl_has_expired(msg.metadata, now().timestamp()):
            self._replies[message_id] = create_message_error_unavailable_ins_message(message_id, self._run.run_id)
            return
        context = self.contexts[msg.metadata.dst_node_id]
        msg.metadata.delivered_at = now().isoformat()
        started = time.perf_counter()
        try:
            reply = self.client_app(message=msg, context=context)
        except Exception as exc:  # a ClientApp failure is the node's error reply, not the run's end
            log.error("ClientApp of node %d (partition %s) raised on a %s message", context.node_id, context.node_config[PARTITION_ID_KEY], msg.metadata.message_type, exc_info=exc)
            reply = _raised_reply(msg, exc)
        finally:
            self._run.clientapp_runtime += time.perf_counter() - started
        reply = self._checked(msg, context, reply)
        if self.serialise:
            reply, size = wire_copy(reply)
            self._run.bytes_recv += size
        self._replies[message_id] = reply

    def _checked(self, msg: Message, context: Context, reply: object) -> Message:
        """`reply` if it is a valid reply to `msg`, else an error reply saying what is wrong."""
        if context.run_config != self.run_config:
            context.run_config = dict(self.run_config)  # as Flower refuses to store such a Context
            reply = _invalid_reply(msg, f"the ClientApp modified its run_config (node {context.node_id})")
        elif not isinstance(reply, Message):
            reply = _invalid_reply(msg, f"expected a Message, got {type(reply).__name__}")
        elif reply.metadata.reply_to_message_id != msg.metadata.message_id or reply.metadata.src_node_id != msg.metadata.dst_node_id:
            reply = _invalid_reply(msg, "it does not reply to the message it was given (build it with Message(..., reply_to=msg))")
        md = reply.metadata
        md.__dict__["_message_id"] = str(uuid4())  # as Flower's simulation worker names replies
        problems = validate_message(reply, is_reply_message=True)
        if problems:
            reply = _invalid_reply(msg, "; ".join(problems))
            reply.metadata.__dict__["_message_id"] = str(uuid4())
        return reply

    def _collect(self, ids: list[str]) -> list[Message]:
        self.before_handover()  # what the agencies recorded is durable before their replies leave
        replies = []
        stamp = now().isoformat()
        for message_id in ids:
            reply = self._replies.pop(message_id, None)
            if reply is None:
                continue
            instruction = self._delivered.pop(message_id)
            if message_ttl_has_expired(reply.metadata, now().timestamp()):
                reply = create_message_error_unavailable_res_message(instruction.metadata, "msg_unavail")
            reply.metadata.delivered_at = stamp
            replies.append(reply)
        return replies


def run_in_process(
    server_app: ServerApp,
    client_app: ClientApp,
    num_nodes: int,
    run_config: UserConfig | None = None,
    *,
    serialise: bool = True,
    before_handover: Callable[[], None] | None = None,
) -> InProcessGrid:
    """Run `server_app` to completion against `num_nodes` virtual nodes running `client_app`,
    all in this thread. Exceptions of the ServerApp propagate; those of the ClientApp become
    error replies. Returns the grid (its `run` holds bytes sent and received and ClientApp
    seconds; its `contexts` the nodes' final Contexts)."""
    grid = InProcessGrid(client_app, num_nodes, run_config, serialise=serialise, before_handover=before_handover)
    context = Context(run_id=grid.run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config=dict(grid.run_config))
    # Messages built with Message(content, dst, type) take run and source ids from TaskIdentity,
    # as in Flower's engines; put back whatever was there before.
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id = grid.run.primary_task_id
    TaskIdentity.run_id = grid.run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    try:
        server_app(grid=grid, context=context)
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
    return grid


def run_federated_in_process(spec_path: Path, n_agencies: int, *, serialise: bool = True) -> None:
    """Peel's federated architectures of a federation spec on the in-process engine: the
    drop-in replacement of `experiments.simulation.run_federated` (same arguments, same files
    written by the ServerApp), with no Ray and no start-up."""
    saved = os.environ.get("PEEL_SPEC")
    os.environ["PEEL_SPEC"] = str(spec_path)  # where Peel's apps look when run_config has no peel-spec
    try:
        from clients.app import app as client_app
        from privacy.audit_trail import deferred_sync, sync_pending
        from server.app import app as server_app

        # Flower logs every round at INFO; Peel prints its own progress, and failures come back
        # to the strategy as error replies.
        logging.getLogger("flwr").setLevel(logging.ERROR)
        # Every party runs in this process and this engine carries their messages: the audit
        # trail is fsynced once per hand-over instead of once per entry, before anything
        # recorded leaves (privacy.audit_trail.deferred_sync explains why that is the same
        # guarantee).
        with deferred_sync():
            run_in_process(server_app, client_app, n_agencies, serialise=serialise, before_handover=sync_pending)
    finally:
        if saved is None:
            os.environ.pop("PEEL_SPEC", None)
        else:
            os.environ["PEEL_SPEC"] = saved


__all__ = ["InProcessGrid", "run_federated_in_process", "run_in_process", "wire_copy"]
