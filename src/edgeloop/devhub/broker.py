"""The hub's core: authentication, persistent sessions, routing, input queues, twins and
direct methods. It runs on one asyncio loop; ``MqttConnection`` objects feed it packets.

Durability: a routed message is written to the store and committed before its sender gets the
PUBACK, and deleted only when the receiving module acknowledges it; so neither a module nor a
hub restart loses a message (a crash between commit and PUBACK makes the SDK resend it: QoS 1
duplicates that receivers dedupe by message id).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TextIO

from edgeloop.devhub import sas
from edgeloop.devhub.ackreads import AckReads
from edgeloop.devhub.manifest import Manifest
from edgeloop.devhub.mqtt import SUBACK_FAILURE, Connect, Publish
from edgeloop.devhub.queuelog import QueuedMessage
from edgeloop.devhub.routes import Sink
from edgeloop.devhub.store import Store, TwinRow, UpstreamEntry
from edgeloop.devhub.where import RoutedMessage
from edgeloop.runtime.config import merge_patch

if TYPE_CHECKING:
    from edgeloop.devhub.connection import MqttConnection

log = logging.getLogger(__name__)

TWIN_RES = "$iothub/twin/res/#"
TWIN_PATCH = "$iothub/twin/PATCH/properties/desired/#"
METHODS = "$iothub/methods/POST/#"
#: How long an acknowledged delivery may stay uncommitted (a crash then redelivers it).
_LAZY_COMMIT_SECS = 0.2
#: Message property keys the SDK writes on the topic -> routing system property names.
_SYSTEM_KEYS = {
    "$.mid": "messageId",
    "$.cid": "correlationId",
    "$.uid": "userId",
    "$.ct": "contentType",
    "$.ce": "contentEncoding",
    "$.exp": "expiryTimeUtc",
}


@dataclass(frozen=True)
class HubIdentity:
    hub_host: str
    device_id: str


@dataclass(frozen=True)
class ModuleTopics:
    """Per-module topic prefixes, made once per connection."""

    events: str
    inputs: str
    origin: str
    #: The subscription that delivers the module's inputs (``inputs`` + ``#``).
    inputs_filter: str = ""

    @classmethod
    def of(cls, device_id: str, module: str) -> ModuleTopics:
        base = f"devices/{device_id}/modules/{module}/"
        return cls(
            events=f"{base}messages/events/",
            inputs=f"{base}inputs/",
            origin=f"%24.cdid={_quote(device_id)}&%24.cmid={_quote(module)}",
            inputs_filter=f"{base}inputs/#",
        )


@dataclass(frozen=True)
class MethodResult:
    status: int
    payload: Any
    #: True when the hub itself answered (bad payload, module not connected, timeout).
    by_hub: bool = False


#: The same keys as the SDK writes them on the topic ("$" percent-encoded).
_RAW_SYSTEM_KEYS = {key.replace("$", "%24"): name for key, name in _SYSTEM_KEYS.items()}


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


_UNQUOTED: dict[str, str] = {}


def _unquote(text: str) -> str:
    """``urllib.parse.unquote`` with a cache: property names and most values repeat."""
    if "%" not in text:
        return text
    value = _UNQUOTED.get(text)
    if value is None:
        if len(_UNQUOTED) > 4096:
            _UNQUOTED.clear()
        value = _UNQUOTED[text] = urllib.parse.unquote(text)
    return value


def parse_properties(text: str) -> tuple[dict[str, str], dict[str, str], str]:
    """The property segment of a telemetry topic -> (system, application) properties, and the
    segment to forward on an input topic (without ``$.on``, every ``/`` percent-encoded: the
    SDK splits input topics on ``/``)."""
    system: dict[str, str] = {}
    app: dict[str, str] = {}
    forwarded: list[str] = []
    if not text:
        return system, app, ""
    for pair in text.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        name = _RAW_SYSTEM_KEYS.get(raw_key)
        if name is not None:
            system[name] = _unquote(raw_value)
            forwarded.append(pair.replace("/", "%2F") if "/" in pair else pair)
            continue
        key, value = _unquote(raw_key), _unquote(raw_value)
        if key in _SYSTEM_KEYS:
            system[_SYSTEM_KEYS[key]] = value
        elif key == "$.on":
            system["outputName"] = value
            continue
        elif key.startswith("$."):
            continue
        else:
            app[key] = value
        forwarded.append(pair.replace("/", "%2F") if "/" in pair else pair)
    return system, app, "&".join(forwarded)


def _seed(desired: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()


def _rid(topic: str) -> str:
    query = topic.partition("?")[2]
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "$rid":
            return urllib.parse.unquote(value)
    return ""


class Broker:
    """Everything the hub knows; connections call in, the control API calls in."""

    def __init__(
        self,
        *,
        identity: HubIdentity,
        manifest: Manifest,
        store: Store,
        upstream_log: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        inflight_window: int = 64,
        input_grace_secs: float = 2.0,
    ) -> None:
        self.identity = identity
        self.manifest = manifest
        self.store = store
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self.connections: dict[str, MqttConnection] = {}
        self.queues: dict[str, dict[int, QueuedMessage]] = {m: {} for m in manifest.modules}
        self.twins: dict[str, TwinRow] = {}
        self.inflight_window = inflight_window
        self.input_grace_secs = input_grace_secs
        self._upstream_log = upstream_log
        self._acks: list[tuple[MqttConnection, int]] = []
        self._new: list[QueuedMessage] = []
        self._flush_scheduled = False
        self._must_commit = False
        self._upstream_dirty = False
        self._batching = False
        self._batch_dirty = False
        self._lazy_timer: asyncio.TimerHandle | None = None
        self._writers: set[MqttConnection] = set()
        self.ack_reads = AckReads()
        self._methods: dict[str, asyncio.Future[MethodResult]] = {}
        self._next_rid = 0
        self._load()

    # -- start-up -------------------------------------------------------------------------
    def _load(self) -> None:
        for name, spec in self.manifest.modules.items():
            if self.store.identity(name) is None:
                self.store.set_identity(name, sas.new_key(), secrets.token_hex(8))
            row = self.store.twin(name)
            seed = _seed(spec.desired)
            if row is None:
                row = TwinRow(copy.deepcopy(spec.desired), 1, {}, 1, seed)
                self.store.save_twin(name, row)
            elif row.seed != seed:
                log.info("module %s: desired properties changed in the manifest; twin re-seeded", name)
                row = TwinRow(copy.deepcopy(spec.desired), row.desired_version + 1, row.reported,
                              row.reported_version, seed)  # fmt: skip
                self.store.save_twin(name, row)
            self.twins[name] = row
        for message in self.store.queued():
            if message.module in self.queues:
                self.queues[message.module][message.id] = message
            else:
                self.store.dequeue(message.id)
        self.store.commit()
        queued = sum(len(q) for q in self.queues.values())
        if queued:
            log.info("%d queued input messages restored", queued)

    def credentials(self, module: str) -> tuple[str, str]:
        """(primary key, generation id) of a module of the manifest."""
        found = self.store.identity(module)
        if found is None:
            raise KeyError(module)
        return found

    def sign(self, module: str, generation_id: str, data: bytes) -> str | None:
        found = self.store.identity(module)
        if found is None or found[1] != generation_id:
            return None
        return sas.sign(found[0], data)

    # -- connections ----------------------------------------------------------------------
    def authenticate(self, packet: Connect) -> tuple[int, str, str]:
        """(CONNACK code, module id, reason). 0 = accepted."""
        device, _, module = packet.client_id.partition("/")
        if device != self.identity.device_id or module not in self.manifest.modules:
            return (
                5,
                module,
                f"client id {packet.client_id!r} is not a module of device {self.identity.device_id!r}",
            )
        expected_user = f"{self.identity.hub_host}/{device}/{module}/"
        if not (packet.username or "").startswith(expected_user):
            return 5, module, f"username {packet.username!r} does not start with {expected_user!r}"
        key, _ = self.credentials(module)
        uri = sas.resource_uri(self.identity.hub_host, device, module)
        check = sas.check_token(packet.password, key=key, uri=uri, now=self.clock())
        if not check.ok:
            return 5, module, check.reason
        return 0, module, ""

    def attach(self, conn: MqttConnection, clean_session: bool) -> bool:
        """A module connected; returns whether a stored session was resumed."""
        old = self.connections.get(conn.module)
        if old is not None and old is not conn:
            log.info("module %s connected again; closing its previous connection", conn.module)
            old.close("taken over by a new connection")
        self.connections[conn.module] = conn
        conn.topics = ModuleTopics.of(self.identity.device_id, conn.module)
        if clean_session:
            self.store.clear_session(conn.client_id)
            self._schedule_flush()
        conn.subscriptions = self.store.subscriptions(conn.client_id)
        conn.to_send.extend(self.queues[conn.module])
        self.stats["connects"] += 1
        resumed = bool(conn.subscriptions)
        if self._inputs_filter(conn.module) in conn.subscriptions:
            # The SDK does not subscribe again after a reconnect; a new process does, quickly.
            asyncio.get_running_loop().call_later(self.input_grace_secs, self._release_inputs, conn)
        return resumed

    def detach(self, conn: MqttConnection) -> None:
        self.ack_reads.forget(conn)
        if self.connections.get(conn.module) is conn:
            del self.connections[conn.module]

    def _release_inputs(self, conn: MqttConnection) -> None:
        if not conn.inputs_ready and not conn.closed:
            conn.inputs_ready = True
            self.pump(conn)

    def _inputs_filter(self, module: str) -> str:
        return f"devices/{self.identity.device_id}/modules/{module}/inputs/#"

    def subscribe(self, conn: MqttConnection, filters: list[tuple[str, int]]) -> list[int]:
        allowed = {self._inputs_filter(conn.module), TWIN_RES, TWIN_PATCH, METHODS}
        codes = []
        for topic_filter, qos in filters:
            if topic_filter not in allowed:
                log.warning(
                    "module %s: refused subscription to %r (not one of its topics)", conn.module, topic_filter
                )
                self.stats["subscriptions_refused"] += 1
                codes.append(SUBACK_FAILURE)
                continue
            granted = min(qos, 1)
            conn.subscriptions[topic_filter] = granted
            self.store.subscribe(conn.client_id, topic_filter, granted)
            codes.append(granted)
            if topic_filter == self._inputs_filter(conn.module):
                conn.inputs_ready = True
        self._schedule_flush()
        return codes

    def unsubscribe(self, conn: MqttConnection, filters: list[str]) -> None:
        for topic_filter in filters:
            conn.subscriptions.pop(topic_filter, None)
            self.store.unsubscribe(conn.client_id, topic_filter)
        self._schedule_flush()

    def publish(self, conn: MqttConnection, packet: Publish) -> str | None:
        """Handle a PUBLISH from a module; returns a reason to close the connection, or None."""
        conn.acks_since_publish = 0
        self.ack_reads.published(conn)
        topic = packet.topic
        events = conn.topics.events
        if topic.startswith(events):
            self._route(conn, packet, topic[len(events) :])
            return None
        if topic.startswith("$iothub/twin/GET/"):
            self._twin_get(conn, _rid(topic))
        elif topic.startswith("$iothub/twin/PATCH/properties/reported/"):
            self._twin_report(conn, _rid(topic), packet.payload)
        elif topic.startswith("$iothub/methods/res/"):
            self._method_answer(conn, topic, packet.payload)
        else:
            return f"publish to {topic!r}, which is not one of the module's topics"
        if packet.qos:
            conn.send_puback(packet.packet_id or 0)
        return None

    def puback(self, conn: MqttConnection, packet_id: int) -> None:
        conn.acks_since_publish += 1
        message_id = conn.inflight.pop(packet_id, None)
        if message_id is None:
            return
        if self.queues[conn.module].pop(message_id, None) is not None:
            self.store.dequeue(message_id)
            self.stats["delivered"] += 1
            self._schedule_flush(commit=False)
        self.pump(conn)

    # -- routing --------------------------------------------------------------------------
    def _route(self, conn: MqttConnection, packet: Publish, prop_text: str) -> None:
        system, app, forwarded = parse_properties(prop_text)
        system["connectionDeviceId"] = self.identity.device_id
        system["connectionModuleId"] = conn.module
        output = system.get("outputName")
        message = RoutedMessage(packet.payload, app, system)
        sinks: dict[Sink, int] = {}
        for route in self.manifest.routes:
            if route.matches(conn.module, output, message):
                ttl = route.ttl_secs if route.ttl_secs is not None else self.manifest.ttl_secs
                sinks[route.sink] = max(ttl, sinks.get(route.sink, 0))
        self.stats["received"] += 1
        if not sinks:
            self.stats["unrouted"] += 1
        now = self.clock()
        if sinks:
            origin = conn.topics.origin
            forwarded = f"{forwarded}&{origin}" if forwarded else origin
        for sink, ttl in sinks.items():
            if sink.upstream:
                self._upstream(now, conn.module, output, system, app, packet.payload)
                continue
            row_id = self.store.enqueue(sink.module, sink.input, forwarded, packet.payload, now + ttl)
            self._new.append(
                QueuedMessage(row_id, sink.module, sink.input, forwarded, packet.payload, now + ttl)
            )
            self.stats["routed"] += 1
        if packet.qos:
            self._acks.append((conn, packet.packet_id or 0))
        self._schedule_flush()

    def _upstream(
        self,
        now: float,
        module: str,
        output: str | None,
        system: dict[str, str],
        app: dict[str, str],
        body: bytes,
    ) -> None:
        entry = UpstreamEntry(now, module, output, {**app}, {**system}, body)
        row_id = self.store.add_upstream(entry)
        self.stats["upstream"] += 1
        if self._upstream_log is not None:
            line = upstream_view(replace(entry, id=row_id))
            self._upstream_log.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._upstream_dirty = True

    def _schedule_flush(self, commit: bool = True) -> None:
        """Run ``flush`` once at the end of this loop pass. ``commit=False``: the change may
        be committed later (acknowledged deliveries: losing one only means a redelivery)."""
        self._must_commit |= commit
        if self._batching:
            self._batch_dirty = True
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def begin_batch(self) -> None:
        """Handle a burst of packets (one read), then ``end_batch`` flushes once, in this pass."""
        self._batching = True

    def end_batch(self) -> None:
        self._batching = False
        if self._batch_dirty:
            self._batch_dirty = False
            self.flush()

    def wants_write(self, conn: MqttConnection) -> None:
        """``conn`` has bytes queued; they go out at the end of this pass, one write each."""
        self._writers.add(conn)
        self._schedule_flush(commit=False)

    def close(self) -> None:
        """Write out and commit everything (the hub is stopping)."""
        self.flush()
        if self._lazy_timer is not None:
            self._lazy_timer.cancel()
            self._lazy_timer = None
        self.ack_reads.close()
        self.store.commit()

    def _lazy_commit(self) -> None:
        self._lazy_timer = None
        self.store.commit()

    def flush(self) -> None:
        """Commit the batch, then acknowledge senders, deliver what was routed and write."""
        self._flush_scheduled = True  # what the steps below ask for is done here, at the end
        try:
            if self._must_commit:
                self._must_commit = False
                self.store.commit()
            if self._upstream_dirty and self._upstream_log is not None:
                self._upstream_dirty = False
                self._upstream_log.flush()
            acks, self._acks = self._acks, []
            for conn, packet_id in acks:
                conn.send_puback(packet_id)
            new, self._new = self._new, []
            touched = set()
            for message in new:
                self.queues[message.module][message.id] = message
                receiver = self.connections.get(message.module)
                if receiver is not None:
                    receiver.to_send.append(message.id)
                    touched.add(message.module)
            for module in touched:
                self.pump(self.connections[module])
            writers, self._writers = self._writers, set()
            for writer in writers:
                writer.flush_out()
                self.ack_reads.written(writer)
        finally:
            self._flush_scheduled = False
        if self._must_commit or self._acks or self._new or self._writers:
            self._schedule_flush(commit=False)
        elif self._lazy_timer is None and self.store.in_transaction:
            self._lazy_timer = asyncio.get_running_loop().call_later(_LAZY_COMMIT_SECS, self._lazy_commit)

    def pump(self, conn: MqttConnection) -> None:
        if conn.closed or not conn.inputs_ready or conn.topics.inputs_filter not in conn.subscriptions:
            return
        queue = self.queues[conn.module]
        now = self.clock()
        base = conn.topics.inputs
        while conn.to_send and len(conn.inflight) < self.inflight_window:
            message = queue.get(conn.to_send.popleft())
            if message is None:
                continue
            if message.expires < now:
                del queue[message.id]
                self.store.dequeue(message.id)
                self.stats["expired"] += 1
                self._schedule_flush()
                continue
            topic = f"{base}{message.input}/{message.props}"
            packet_id = conn.send_publish(topic, message.body, qos=1, dup=message.sent)
            message.sent = True
            conn.inflight[packet_id] = message.id

    def expire(self) -> int:
        """Drop queued messages past their TTL (also done lazily on delivery)."""
        now = self.clock()
        dropped = 0
        inflight = {i for c in self.connections.values() for i in c.inflight.values()}
        for queue in self.queues.values():
            for message_id in [i for i, m in queue.items() if m.expires < now and i not in inflight]:
                del queue[message_id]
                self.store.dequeue(message_id)
                dropped += 1
        if dropped:
            self.stats["expired"] += dropped
            self._schedule_flush()
        return dropped

    # -- twins ----------------------------------------------------------------------------
    def twin_document(self, module: str) -> dict[str, Any]:
        row = self.twins[module]
        return {
            "desired": {**copy.deepcopy(row.desired), "$version": row.desired_version},
            "reported": {**copy.deepcopy(row.reported), "$version": row.reported_version},
        }

    def _twin_get(self, conn: MqttConnection, rid: str) -> None:
        body = json.dumps(self.twin_document(conn.module)).encode()
        conn.send_publish(f"$iothub/twin/res/200/?$rid={_quote(rid)}", body, qos=0)

    def _twin_report(self, conn: MqttConnection, rid: str, payload: bytes) -> None:
        try:
            patch = json.loads(payload or b"null")
        except ValueError:
            patch = None
        if not isinstance(patch, dict):
            log.warning("module %s: reported patch is not a JSON object", conn.module)
            message = b'{"message":"reported properties patch must be a JSON object"}'
            conn.send_publish(f"$iothub/twin/res/400/?$rid={_quote(rid)}", message, qos=0)
            return
        row = self.twins[conn.module]
        merge_patch(row.reported, {k: v for k, v in patch.items() if not k.startswith("$")})
        row.reported_version += 1
        self.store.save_twin(conn.module, row)
        self._schedule_flush()
        self.stats["reported_patches"] += 1
        conn.send_publish(
            f"$iothub/twin/res/204/?$rid={_quote(rid)}&$version={row.reported_version}", b"", qos=0
        )

    def patch_desired(self, module: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch a module's desired properties and push the patch if it is connected."""
        row = self.twins[module]
        clean = {k: v for k, v in patch.items() if not k.startswith("$")}
        merge_patch(row.desired, clean)
        row.desired_version += 1
        self.store.save_twin(module, row)
        self._schedule_flush()
        conn = self.connections.get(module)
        if conn is not None and TWIN_PATCH in conn.subscriptions:
            body = json.dumps({**clean, "$version": row.desired_version}).encode()
            conn.send_publish(f"$iothub/twin/PATCH/properties/desired/?$version={row.desired_version}", body)
        return self.twin_document(module)

    # -- methods --------------------------------------------------------------------------
    async def invoke(self, module: str, method: str, payload: bytes, timeout: float) -> MethodResult:
        """Call a direct method; 404 when the module is not connected, 504 on timeout. The hub's
        own answers have the payload shape of a module's errors: ``{"error": reason}``."""
        text = payload.decode("utf-8", errors="replace").strip()
        try:
            json.loads(text or "null")
        except ValueError:
            return MethodResult(
                400, {"error": "the method payload must be JSON (IoT Hub refuses other payloads)"}, True
            )
        conn = self.connections.get(module)
        if conn is None or METHODS not in conn.subscriptions:
            return MethodResult(
                404, {"error": f"module {module!r} is not connected or has no method handler"}, True
            )
        self._next_rid += 1
        rid = f"{self._next_rid:x}"
        future: asyncio.Future[MethodResult] = asyncio.get_running_loop().create_future()
        self._methods[rid] = future
        self.stats["method_calls"] += 1
        conn.send_publish(f"$iothub/methods/POST/{_quote(method)}/?$rid={rid}", (text or "null").encode())
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.stats["method_timeouts"] += 1
            return MethodResult(
                504, {"error": f"module {module!r} did not answer {method!r} in {timeout:g}s"}, True
            )
        finally:
            self._methods.pop(rid, None)

    def _method_answer(self, conn: MqttConnection, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        rid = _rid(topic)
        future = self._methods.get(rid)
        if future is None or future.done():
            log.info("module %s answered method request %s after its caller gave up", conn.module, rid)
            return
        try:
            status = int(parts[3])
        except (IndexError, ValueError):
            status = 500
        try:
            value = json.loads(payload or b"null")
        except ValueError:
            value = payload.decode("utf-8", errors="replace")
        future.set_result(MethodResult(status, value))

    # -- views ----------------------------------------------------------------------------
    def module_status(self) -> dict[str, Any]:
        """Per module: connection, subscriptions (a disconnected module's stored session)."""
        out = {}
        for module in self.manifest.modules:
            conn = self.connections.get(module)
            stored = self.store.subscriptions(f"{self.identity.device_id}/{module}") if conn is None else {}
            out[module] = {
                "connected": conn is not None,
                "subscriptions": sorted(conn.subscriptions if conn else stored),
                "inputsReady": bool(conn and conn.inputs_ready),
                "queued": len(self.queues[module]),
                "inflight": len(conn.inflight) if conn else 0,
            }
        return out


def upstream_view(entry: UpstreamEntry) -> dict[str, Any]:
    """An ``$upstream`` entry as ``dev upstream`` and ``upstream.jsonl`` show it."""
    return {"id": entry.id, "ts": entry.ts, "module": entry.module, "output": entry.output,
            "properties": entry.properties, "system": entry.system,
            "body": decode_body(entry.body)}  # fmt: skip


def decode_body(body: bytes) -> Any:
    """A body for people to read: JSON when it parses, else text, else a hex preview."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": body[:256].hex(), "bytes": len(body)}
    try:
        return json.loads(text)
    except ValueError:
        return text
