"""artifacts upload | download | ls (a running server's artifacts, over HTTP and GraphQL)
and artifacts verify | gc (straight on the database and the store, like `token`)."""

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from app.cli.exits import (
    EXIT_INTEGRITY,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    exit_code,
    exit_for_transfer,
)
from app.cli.pipeline import client, refusal_message, server_options, token
from app.client import Artifacts, Client, ClientError

LIST = """
query($run: ID!, $path: String!) {
  run(id: $run) { artifacts(path: $path) { path isDir size digest } }
}
"""


class Usage(Exception):
    """A command line that names no run, or both a run and a blob."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("artifacts", help="a run's files, uploads, and the store's upkeep")
    a = p.add_subparsers(dest="artifacts_command", required=True)

    up = a.add_parser(
        "upload",
        help="upload a file or a directory (recursively) to a run, or a file as a blob",
        description="--run RUN LOCAL_PATH [--path FOLDER], or --blob FILE (prints its digest, "
        "for registerModelVersion's files when the model was built outside any run)",
    )
    up.add_argument("local", nargs="?", metavar="LOCAL_PATH")
    up.add_argument("--run", help="the run to log the files to")
    up.add_argument(
        "--path",
        default="",
        help="the run folder to put them under (default: its root); a file keeps its name",
    )
    up.add_argument("--blob", type=Path, metavar="FILE", help="store FILE referenced by nothing")
    server_options(up)

    down = a.add_parser("download", help="download a run's file or folder into DIR")
    down.add_argument("--run", required=True)
    down.add_argument("path", metavar="PATH", help="a file or a folder of the run ('.': all)")
    down.add_argument("dir", metavar="DIR", type=Path)
    server_options(down)

    ls = a.add_parser("ls", help="the files and folders directly under PATH in a run")
    ls.add_argument("--run", required=True)
    ls.add_argument("path", nargs="?", default="", metavar="PATH")
    server_options(ls)

    verify = a.add_parser(
        "verify", help="re-hash every stored blob (on the database and the store, server up or not)"
    )
    verify.add_argument("--json", action="store_true")

    gc = a.add_parser("gc", help="delete blobs nothing references (on the database and the store)")
    gc.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="keep what was uploaded or claimed this recently "
        "(default: MODELGRAPH_ARTIFACT_GC_GRACE_SECONDS)",
    )
    gc.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def transfer_message(error: ClientError, url: str) -> str:
    """The server's own words when it gave a refusal code (a corrupt blob is a 500 whose
    message says which), else what the other commands say."""
    return error.message if error.code else refusal_message(error, url)


def _root(path: str) -> str:
    return "" if path.strip("/") in ("", ".") else path.strip("/")


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def local_files(local: Path, folder: str) -> Iterator[tuple[Path, str]]:
    """(file, run path) for `local` and, for a directory, every file under it, by path."""
    if local.is_file():
        yield local, _join(folder, local.name)
        return
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        yield file, _join(folder, file.relative_to(local).as_posix())


def list_children(graphql: Client, run_id: str, path: str) -> list[dict[str, Any]]:
    found = graphql.execute(LIST, {"run": run_id, "path": path})["run"]
    if found is None:
        raise ClientError(
            f"run {run_id!r} does not exist",
            errors=[{"message": "not found", "extensions": {"code": "NOT_FOUND"}}],
        )
    entries: list[dict[str, Any]] = found["artifacts"]
    return entries


def walk(graphql: Client, run_id: str, path: str) -> Iterator[dict[str, Any]]:
    """Every file under a run's folder, depth first, one query per folder."""
    for entry in list_children(graphql, run_id, path):
        if entry["isDir"]:
            yield from walk(graphql, run_id, entry["path"])
        else:
            yield entry


def _inside(base: Path, relative: str) -> Path:
    """`base/relative`, refusing a path that would land outside `base`."""
    parts = PurePosixPath(relative).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or relative.startswith("/"):
        raise ClientError(f"the server named an unsafe path {relative!r}")
    return base.joinpath(*parts)


def _upload(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.blob is not None:
        if args.run or args.local:
            raise Usage("--blob FILE takes no --run and no LOCAL_PATH")
        with Artifacts(args.url, token=token()) as transfers:
            stored = transfers.upload_blob(args.blob)
        return [{"digest": stored.digest, "size": stored.size, "file": str(args.blob)}]
    if not args.run or not args.local:
        raise Usage("give --run RUN_ID LOCAL_PATH, or --blob FILE")
    local = Path(args.local)
    if not local.exists():
        raise Usage(f"{local} does not exist")
    done = []
    with Artifacts(args.url, token=token()) as transfers:
        for file, path in local_files(local, _root(args.path)):
            stored = transfers.upload_run_file(args.run, path, file)
            done.append({"path": stored.path, "digest": stored.digest, "size": stored.size})
            if not args.json:
                print(f"{stored.digest}  {stored.size:>12}  {stored.path}", flush=True)
    return done


def _download(args: argparse.Namespace) -> list[dict[str, Any]]:
    path = _root(args.path)
    with client(args) as graphql, Artifacts(args.url, token=token()) as transfers:
        files: list[tuple[str, dict[str, Any]]] = []
        if path:
            head = transfers.http.head(Artifacts.run_path(args.run, path))
            if head.status_code == 200:
                # A file: saved under its name.
                entry = {"path": path, "digest": head.headers["etag"].strip('"')}
                files = [(PurePosixPath(path).name, entry)]
        if not files:
            prefix = f"{path}/" if path else ""
            files = [(e["path"].removeprefix(prefix), e) for e in walk(graphql, args.run, path)]
        if not files and path:
            raise ClientError(
                f"run {args.run} has no file or folder {path!r}",
                errors=[{"message": "not found", "extensions": {"code": "NOT_FOUND"}}],
            )
        done = []
        for relative, entry in files:
            dest = _inside(args.dir, relative)
            dest.parent.mkdir(parents=True, exist_ok=True)
            got = transfers.download_run_file(
                args.run, entry["path"], dest, expected=entry["digest"]
            )
            done.append({"path": entry["path"], "file": str(dest), "digest": got.digest})
            if not args.json:
                print(f"{got.digest}  {got.size:>12}  {dest}", flush=True)
    return done


def _ls(args: argparse.Namespace) -> list[dict[str, Any]]:
    with client(args) as graphql:
        entries = list_children(graphql, args.run, _root(args.path))
    if not args.json:
        for e in entries:
            if e["isDir"]:
                print(f"{'':64}  {'-':>12}  {e['path']}/")
            else:
                print(f"{e['digest']}  {e['size']:>12}  {e['path']}")
    return entries


async def _upkeep(args: argparse.Namespace) -> dict[str, Any]:
    # Here, not at the top: upload, download and ls only talk to a server.
    from app.artifacts.store import BlobStore
    from app.artifacts.upkeep import collect_garbage, verify
    from app.config import Settings
    from app.db import Database, migrate

    settings = Settings()
    await asyncio.to_thread(migrate.upgrade, settings.database_url)
    db = Database.from_settings(settings)
    blobs = BlobStore.from_setting(settings.artifact_store, settings.database_url)
    try:
        if args.artifacts_command == "verify":
            report = await verify(db, blobs)
            return {**asdict(report), "ok": report.ok, "store": blobs.url}
        grace = settings.artifact_gc_grace_seconds if args.grace is None else args.grace
        gc = await collect_garbage(db, blobs, grace=timedelta(seconds=grace))
        return {**asdict(gc), "graceSeconds": grace, "store": blobs.url}
    finally:
        await db.dispose()


def _print_upkeep(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(report))
    elif args.artifacts_command == "verify":
        print(f"checked {report['checked']} blob(s) in {report['store']}")
        for kind in ("missing", "corrupt", "orphaned"):
            for digest in report[kind]:
                print(f"{kind:<9} {digest}")
        print("ok" if report["ok"] else "NOT OK: the store lost or damaged content")
    else:
        for digest in report["blobs_deleted"]:
            print(f"deleted   {digest}")
        for key in report["uploads_deleted"]:
            print(f"deleted   {key} (an unfinished upload)")
        print(
            f"deleted {len(report['blobs_deleted'])} blob(s) and "
            f"{len(report['uploads_deleted'])} unfinished upload(s); "
            f"kept {report['blobs_kept']} claimed or referenced meanwhile"
        )


def run(args: argparse.Namespace) -> int:
    command = args.artifacts_command
    name = f"modelgraph artifacts {command}"
    if command in ("verify", "gc"):
        from app.errors import DomainError

        try:
            report = asyncio.run(_upkeep(args))
        except DomainError as exc:
            print(f"{name}: {exc.message}", file=sys.stderr)
            return exit_code(exc.code)
        _print_upkeep(args, report)
        return EXIT_OK if command == "gc" or report["ok"] else EXIT_INTEGRITY
    try:
        answer = {"upload": _upload, "download": _download, "ls": _ls}[command](args)
    except Usage as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClientError as exc:
        print(f"{name}: {transfer_message(exc, args.url)}", file=sys.stderr)
        return exit_for_transfer(exc)
    except OSError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else exit_code(None)
    if command == "upload" and args.blob is not None and not args.json:
        print(answer[0]["digest"])
    elif args.json:
        print(json.dumps(answer))
    return EXIT_OK
