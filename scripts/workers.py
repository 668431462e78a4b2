"""`modelgraph serve --workers N` on PostgreSQL: the same load against 1 and 2 workers.

    .venv/bin/python scripts/workers.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/DB
        [--workers 1,2] [--read-seconds 10] [--read-clients 8] [--ingest-clients 4]
        [--ingest-batches 48]

For each worker count it starts `python -m app serve --workers N` (scripts/_harness.py
Server: the harness's ADMIN token, every request authenticated, query limits on) on the
database (migrated if needed; nothing is dropped: the runs it makes have fresh names), waits
until every worker has answered, then measures:

  read    `experiment(name) { id name }` from --read-clients keep-alive connections for
          --read-seconds: requests/s, and the server's CPU ms per request (every worker's
          user + system time, /proc). The clients are raw HTTP/1.1 over sockets in two
          processes, so the load generator costs little of the machine's two cores; its
          own CPU is reported too.
  ingest  logMetrics in the series form (1,000-point batches, 5 keys x 200 points) from
          --ingest-clients clients, each into its own run: points/s and server CPU.

The machine is shared: compare rates measured in the same run, and prefer CPU per request.
postgres_cpu_s is every PostgreSQL process's CPU over the same span (on a 2-core machine
the database's backends compete with the workers for the same cores).
Progress goes to stderr; one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from _harness import Server, add_root_to_path, auth_headers, logger, rounded

add_root_to_path()

from bench import INGEST_EXPERIMENT, METRIC_KEYS, series_batches, start_run  # noqa: E402

from app.client import encode as body  # noqa: E402

log = logger("workers")
READ = "query E($name: String!) { experiment(name: $name) { id name } }"
EXPERIMENT = "workers-bench"
CREATE = """
mutation($name: String!) { createExperiment(input: {name: $name}) { __typename } }
"""
WORKER = "x-modelgraph-worker"


def postgres_cpu_seconds() -> float:
    """user + system CPU of every PostgreSQL process on the machine (shared with whatever
    else uses the server: context, not a figure of ours alone)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, rest = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        if comm.endswith("(postgres"):
            fields = rest.split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for_workers(server: Server, count: int, timeout: float = 60.0) -> list[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        with httpx.Client(base_url=server.base_url, trust_env=False) as client:
            response = client.get("/healthz")
        if response.status_code == 200:
            seen.add(response.headers.get(WORKER, "single"))
        else:
            time.sleep(0.1)
    if len(seen) < count:
        raise SystemExit(f"only {len(seen)} of {count} workers answered")
    return sorted(seen)


# ---------------------------------------------------------------- read


def _request(port: int, payload: bytes) -> bytes:
    headers = "".join(f"{k}: {v}\r\n" for k, v in auth_headers().items())
    return (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def _exchange(sock: socket.socket, request: bytes, buffer: bytearray) -> bool:
    """Send one request on a keep-alive socket and read its answer; True if it is 200 and
    names the experiment."""
    sock.sendall(request)
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).lower()
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(buffer) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    answer = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return head.startswith(b"http/1.1 200") and EXPERIMENT.encode() in answer


def _reader_process(
    port: int, request: bytes, threads: int, start_at: float, end_at: float, out: Any
) -> None:
    counts = [[0, 0] for _ in range(threads)]

    def run(i: int) -> None:
        buffer = bytearray()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _exchange(sock, request, buffer)  # warm: the connection is open
            time.sleep(max(0.0, start_at - time.monotonic()))
            while time.monotonic() < end_at:
                counts[i][0 if _exchange(sock, request, buffer) else 1] += 1

    cpu0 = time.process_time()
    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((sum(c[0] for c in counts), sum(c[1] for c in counts), time.process_time() - cpu0))


def bench_read(server: Server, clients: int, seconds: float) -> dict[str, Any]:
    request = _request(server.port, body(READ, {"name": EXPERIMENT}))
    processes = 2 if clients > 1 else 1
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    start_at = time.monotonic() + 2.0
    end_at = start_at + seconds
    procs = [
        context.Process(
            target=_reader_process, args=(server.port, request, n, start_at, end_at, out)
        )
        for n in per
    ]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu0, pg0 = server.cpu_seconds(), postgres_cpu_seconds()
    time.sleep(max(0.0, end_at - time.monotonic()))
    cpu1, pg1 = server.cpu_seconds(), postgres_cpu_seconds()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": ok + errors,
        "errors": errors,
        "requests_per_s": rounded((ok + errors) / seconds, 1),
        "server_cpu_s": rounded(cpu),
        "server_cpu_ms_per_request": rounded(cpu * 1000 / (ok + errors), 3)
        if cpu and ok + errors
        else None,
        "client_cpu_s": rounded(sum(r[2] for r in results)),
        "postgres_cpu_s": rounded(pg1 - pg0),
    }


# ---------------------------------------------------------------- ingest


def bench_ingest(server: Server, clients: int, batches: int) -> dict[str, Any]:
    rng = random.Random(7)
    per = max(1, batches // clients)
    opened = [server.client() for _ in range(clients)]
    try:
        work = [
            series_batches(start_run(c, f"workers-{uuid.uuid4().hex[:8]}"), per, rng, METRIC_KEYS)
            for c in opened
        ]
        # warm: each connection has sent a batch
        warm = series_batches(start_run(opened[0], "workers-warm"), 1, rng, METRIC_KEYS)
        opened[0].send(warm[0])
        failures: list[str] = []
        barrier = threading.Barrier(clients + 1)

        def run(i: int) -> None:
            barrier.wait()
            for payload in work[i]:
                response = opened[i].send(payload)
                if response.status_code != 200 or b"LogMetricsSuccess" not in response.content:
                    failures.append(response.text[:300])
                    return

        threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        cpu0, pg0 = server.cpu_seconds(), postgres_cpu_seconds()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu1, pg1 = server.cpu_seconds(), postgres_cpu_seconds()
    finally:
        for c in opened:
            c.close()
    if failures:
        raise SystemExit(f"logMetrics failed: {failures[0]}")
    points = per * clients * 1000
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return {
        "clients": clients,
        "batches": per * clients,
        "points": points,
        "seconds": rounded(wall),
        "points_per_s": round(points / wall),
        "server_cpu_s": rounded(cpu),
        "server_cpu_us_per_point": rounded(cpu * 1e6 / points, 2) if cpu else None,
        "postgres_cpu_s": rounded(pg1 - pg0),
    }


def measure(url: str, workers: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    server = Server(url, tmp / f"server-{workers}.log", workers=workers, error=SystemExit)
    server.start()
    try:
        pids = wait_for_workers(server, workers)
        log(f"{workers} worker(s) answering: {', '.join(pids)}")
        with server.client() as client:
            client.send(body(CREATE, {"name": EXPERIMENT}))  # ALREADY_EXISTS is fine
            client.send(body(CREATE, {"name": INGEST_EXPERIMENT}))
        log(f"read: {args.read_clients} clients, {args.read_seconds:g} s")
        read = bench_read(server, args.read_clients, args.read_seconds)
        log(f"  {read['requests_per_s']} req/s, {read['server_cpu_ms_per_request']} ms CPU/req")
        log(f"ingest: {args.ingest_clients} clients, {args.ingest_batches} series batches")
        ingest = bench_ingest(server, args.ingest_clients, args.ingest_batches)
        log(f"  {ingest['points_per_s']} points/s")
    finally:
        output = server.stop()
    if "Traceback" in output:
        log(output[-3000:])
    return {"workers": workers, "read": read, "ingest": ingest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://...")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma separated")
    parser.add_argument("--read-seconds", type=float, default=10.0)
    parser.add_argument("--read-clients", type=int, default=8)
    parser.add_argument("--ingest-clients", type=int, default=4)
    parser.add_argument("--ingest-batches", type=int, default=48)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("--workers N needs PostgreSQL: give a postgresql+asyncpg:// URL")
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="modelgraph-workers-") as tmp:
        results = [measure(args.database_url, n, args, Path(tmp)) for n in counts]
    out: dict[str, Any] = {"command": " ".join(sys.argv), "results": results}
    if len(results) >= 2:
        first, last = results[0], results[-1]
        out["read_ratio"] = rounded(
            last["read"]["requests_per_s"] / first["read"]["requests_per_s"], 2
        )
        out["ingest_ratio"] = rounded(
            last["ingest"]["points_per_s"] / first["ingest"]["points_per_s"], 2
        )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
