"""Dev hub throughput, round trip and CPU per routed message, with the real SDK.

A hub process routes messages between SDK processes (bare ``IoTHubModuleClient``s, no module
runtime, so the sender's figure is the SDK's own cost):

- throughput: a sender sends N 1 KB JSON messages (QoS 1, one thread, each send waits for its
  PUBACK) routed to a receiver; messages/s = N / (first send -> last receipt);
- CPU per routed message: the hub's CPU time over that run / N, next to the sender's CPU
  time for its sends / N (target: hub <= half the sender's), and the hub's wake-ups (times
  it blocked, from /proc) / N;
- round trip: a pinger sends to an echoer, which sends back (A -> hub -> B -> hub -> A),
  one at a time; p50/p99.

    python -m bench.devhub [--messages 2000] [--pings 300] [--address 127.0.0.42]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from edgeloop.devhub.testing import HubProcess

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps({"schema": "bench/1", "pad": "x" * 1000}).encode()


# -- roles run as child processes ----------------------------------------------------------
def _client() -> Any:
    from azure.iot.device import IoTHubModuleClient

    return IoTHubModuleClient.create_from_edge_environment()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _message(body: bytes, **props: str) -> Any:
    from azure.iot.device import Message

    msg = Message(
        body, message_id=uuid.uuid4().hex, content_encoding="utf-8", content_type="application/json"
    )
    msg.custom_properties.update(props)
    return msg


def role_sender(count: int, threads: int = 1) -> None:
    client = _client()
    client.connect()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()

    def send(first: int) -> None:
        for i in range(first, count, threads):
            client.send_message_to_output(_message(BODY, seq=str(i)), "out")

    cpu0, t0 = _cpu(), time.time()
    workers = [threading.Thread(target=send, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu1 = _cpu()
    print(json.dumps({"cpu": cpu1 - cpu0, "t0": t0, "t1": time.time()}), flush=True)
    client.shutdown()


def role_receiver(count: int, _threads: int = 1) -> None:
    client = _client()
    done = threading.Event()
    received = [0]

    def on_message(_msg: Any) -> None:
        received[0] += 1
        if received[0] >= count:
            done.set()

    client.on_message_received = on_message
    client.connect()
    print(json.dumps({"ready": True}), flush=True)
    done.wait()
    print(json.dumps({"received": received[0], "t_last": time.time()}), flush=True)
    client.shutdown()


def role_echoer(_count: int, _threads: int = 1) -> None:
    client = _client()
    stop = threading.Event()

    def on_message(msg: Any) -> None:
        client.send_message_to_output(_message(msg.data, t0=msg.custom_properties.get("t0", "")), "out")

    client.on_message_received = on_message
    client.connect()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    stop.set()
    client.shutdown()


def role_pinger(count: int, _threads: int = 1) -> None:
    client = _client()
    pong = threading.Event()
    client.on_message_received = lambda _msg: pong.set()
    client.connect()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    rtts = []
    for _ in range(count):
        pong.clear()
        start = time.perf_counter()
        client.send_message_to_output(_message(BODY), "out")
        if not pong.wait(10):
            break
        rtts.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"rtts_ms": rtts}), flush=True)
    client.shutdown()


ROLES = {"sender": role_sender, "receiver": role_receiver, "echoer": role_echoer, "pinger": role_pinger}


# -- the driver ----------------------------------------------------------------------------
def _manifest() -> dict[str, Any]:
    names = list(ROLES)
    modules = {
        n: {"type": "docker", "status": "running", "restartPolicy": "never", "settings": {"image": "bench"}}
        for n in names
    }

    def route(src: str, dst: str) -> str:
        return f'FROM /messages/modules/{src}/outputs/out INTO BrokeredEndpoint("/modules/{dst}/inputs/in")'

    routes = {
        "flow": route("sender", "receiver"),
        "ping": route("pinger", "echoer"),
        "pong": route("echoer", "pinger"),
    }
    content: dict[str, Any] = {
        "$edgeAgent": {"properties.desired": {"modules": modules}},
        "$edgeHub": {"properties.desired": {"routes": routes}},
    }
    content.update({n: {"properties.desired": {}} for n in names})
    return {"modulesContent": content}


class Peer:
    def __init__(self, hub: HubProcess, role: str, count: int, log_dir: Path, threads: int = 1) -> None:
        env = {
            **hub.env,
            **hub.module_env(role),
            "PYTHONPATH": os.pathsep.join([str(ROOT), hub.env["PYTHONPATH"]]),
        }
        self.log = open(log_dir / f"{role}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.devhub",
                "--role",
                role,
                "--count",
                str(count),
                "--threads",
                str(threads),
            ],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            text = self.proc.stdout.readline()
            if not text:
                raise RuntimeError(f"peer exited with {self.proc.wait()}; see {self.log.name}")
            if text.startswith("{"):
                result: dict[str, Any] = json.loads(text)
                return result

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _proc_sleeps(pid: int) -> int:
    """Times the process blocked (voluntary context switches): its wake-ups."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def throughput(hub: HubProcess, count: int, log_dir: Path, threads: int = 1) -> dict[str, Any]:
    receiver = Peer(hub, "receiver", count, log_dir)
    sender = Peer(hub, "sender", count, log_dir, threads)
    receiver.line()
    sender.line()
    hub_cpu0, hub_sleeps0 = _proc_cpu(hub.pid), _proc_sleeps(hub.pid)
    sender.go()
    sent = sender.line()
    done = receiver.line()
    hub_cpu = _proc_cpu(hub.pid) - hub_cpu0
    hub_sleeps = _proc_sleeps(hub.pid) - hub_sleeps0
    sender.close()
    receiver.close()
    elapsed = done["t_last"] - sent["t0"]
    sender_ms, hub_ms = sent["cpu"] * 1000 / count, hub_cpu * 1000 / count
    return {
        "messages": count,
        "sending_threads": threads,
        "messages_per_s": count / elapsed,
        "sender_cpu_ms_per_msg": sender_ms,
        "hub_cpu_ms_per_msg": hub_ms,
        "hub_to_sender_cpu": hub_ms / sender_ms,
        "hub_wakeups_per_msg": hub_sleeps / count,
    }


def round_trip(hub: HubProcess, count: int, log_dir: Path) -> dict[str, Any]:
    echoer = Peer(hub, "echoer", count, log_dir)
    pinger = Peer(hub, "pinger", count, log_dir)
    echoer.line()
    pinger.line()
    pinger.go()
    rtts = pinger.line()["rtts_ms"]
    echoer.go()
    pinger.close()
    echoer.close()
    cuts = statistics.quantiles(rtts, n=100)
    return {"pings": len(rtts), "rtt_p50_ms": statistics.median(rtts), "rtt_p99_ms": cuts[98]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--address", default="127.0.0.42", help="loopback address for the bench hub")
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        ROLES[args.role](args.count, args.threads)
        return 0
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-") as tmp:
        work = Path(tmp)
        hub = HubProcess(
            address=args.address,
            manifest=_manifest(),
            state_dir=work / "hub",
            extra_args=["--log-level", "WARNING"],
        )
        hub.start()
        try:
            flows = [throughput(hub, args.messages, work, threads) for threads in (1, 8)]
            rtt = round_trip(hub, args.pings, work)
        finally:
            hub.close()
    for flow in flows:
        print(
            f"{flow['sending_threads']} sending thread(s), 1 KB, QoS 1: "
            f"{flow['messages_per_s']:.0f} routed messages/s; CPU per routed message: "
            f"hub {flow['hub_cpu_ms_per_msg']:.3f} ms, sending SDK {flow['sender_cpu_ms_per_msg']:.3f} ms "
            f"-> hub/sender {flow['hub_to_sender_cpu']:.2f} (target <= 0.5); "
            f"hub wake-ups a message {flow['hub_wakeups_per_msg']:.2f}"
        )
    print(
        f"round trip A -> hub -> B -> hub -> A: p50 {rtt['rtt_p50_ms']:.1f} ms, "
        f"p99 {rtt['rtt_p99_ms']:.1f} ms"
    )
    out = ROOT / "bench" / "results" / "devhub.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"throughput": flows, "round_trip": rtt}, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
