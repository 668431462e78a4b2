"""pull: download exactly one model version's files into a directory, every byte verified.

The files land in a temporary directory beside DIR; DIR is replaced only once every file
hashed to its digest and the file set to the version's manifest digest, so a deploy
reading DIR sees the old version or the new one, never half of one."""

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.artifacts.content import manifest_digest
from app.cli.artifacts import _inside, transfer_message
from app.cli.exits import (
    EXIT_INTEGRITY,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    exit_for_transfer,
)
from app.cli.pipeline import client, server_options, token
from app.client import Artifacts, ClientError, DigestMismatch

STAMP = "MODELGRAPH_VERSION.json"
FIELDS = "version stage digest files { path digest size }"
BY_NUMBER = (
    "query($model: String!, $version: Int, $alias: String) {"
    f" modelVersion(model: $model, version: $version, alias: $alias) {{ {FIELDS} }} }}"
)
BY_STAGE = (
    "query($model: String!, $stage: Stage!) {"
    f" model(name: $model) {{ latestVersion(stage: $stage) {{ {FIELDS} }} }} }}"
)


class Refused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pull",
        help="download a model version's files into DIR, verified (DIR replaced whole)",
    )
    p.add_argument("--model", required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", type=str.upper, help="the version in this stage (the latest)")
    which.add_argument("--alias")
    which.add_argument("--version", type=int)
    p.add_argument("dir", metavar="DIR", type=Path)
    p.add_argument(
        "--force",
        action="store_true",
        help=f"replace DIR even when it holds something other than a pull (no {STAMP})",
    )
    server_options(p)
    p.set_defaults(handler=run)


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The version asked for, with its files: a Refused naming what is not there."""
    with client(args) as graphql:
        if args.stage is not None:
            found = graphql.execute(BY_STAGE, {"model": args.model, "stage": args.stage})
            model = found["model"]
            if model is None:
                raise Refused(f"model {args.model!r} does not exist", EXIT_NOT_FOUND)
            version = model["latestVersion"]
            wanted = f"in {args.stage}"
        else:
            variables = {"model": args.model, "version": args.version, "alias": args.alias}
            version = graphql.execute(BY_NUMBER, variables)["modelVersion"]
            wanted = f"version {args.version}" if args.alias is None else f"alias {args.alias!r}"
    if version is None:
        raise Refused(f"model {args.model!r} has no version {wanted}", EXIT_NOT_FOUND)
    if version["digest"] is None:
        raise Refused(
            f"version {version['version']} of {args.model!r} was registered without files",
            EXIT_NOT_FOUND,
        )
    return dict(version)


def _check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise Refused(f"{target} is not a directory", EXIT_REFUSED)
    if target.is_dir() and any(target.iterdir()) and not (target / STAMP).exists() and not force:
        raise Refused(
            f"{target} holds files that no pull put there: not replacing them (--force does)",
            EXIT_REFUSED,
        )


def fetch(args: argparse.Namespace, version: dict[str, Any], into: Path) -> dict[str, Any]:
    """Every file of `version` into `into`, each checked against its digest and size, and
    the set against the version's manifest digest; then the stamp."""
    received = []
    with Artifacts(args.url, token=token()) as transfers:
        for f in version["files"]:
            if f["path"] == STAMP:
                raise Refused(
                    f"the version has a file named {STAMP}, which pull writes", EXIT_REFUSED
                )
            dest = _inside(into, f["path"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            # By digest from the server given, never from a URL in the answer: the token
            # goes only where --url says.
            got = transfers.download_blob(f["digest"], dest)
            if got.size != f["size"]:
                raise DigestMismatch(f["path"], expected=f"{f['size']} bytes", actual=str(got.size))
            received.append((f["path"], got.digest, got.size))
    digest = manifest_digest(received)
    if digest != version["digest"]:
        raise DigestMismatch("the version's manifest", expected=version["digest"], actual=digest)
    stamp = {
        "model": args.model,
        "version": version["version"],
        "stage": version["stage"],
        "digest": digest,
    }
    if args.alias is not None:
        stamp["alias"] = args.alias
    (into / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp


def replace_dir(new: Path, target: Path) -> None:
    """Put `new` where `target` is: renames within one directory, the old one removed after."""
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        new.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    target: Path = args.dir.absolute()
    staging: Path | None = None
    try:
        _check_target(target, args.force)
        version = resolve(args)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.pull-", dir=target.parent))
        stamp = fetch(args, version, staging)
        replace_dir(staging, target)
        staging = None
    except Refused as exc:
        print(f"modelgraph pull: {exc}", file=sys.stderr)
        return exc.code
    except DigestMismatch as exc:
        print(f"modelgraph pull: NOT PULLED, {exc.message}", file=sys.stderr)
        return EXIT_INTEGRITY
    except ClientError as exc:
        print(f"modelgraph pull: NOT PULLED, {transfer_message(exc, args.url)}", file=sys.stderr)
        return exit_for_transfer(exc)
    finally:
        if staging is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(staging)
    if args.json:
        print(json.dumps({**stamp, "dir": str(target), "files": len(version["files"])}))
    else:
        print(
            f"pulled {args.model} version {stamp['version']} ({stamp['stage']}, "
            f"sha256:{stamp['digest']}, {len(version['files'])} file(s)) into {target}"
        )
    return EXIT_OK
