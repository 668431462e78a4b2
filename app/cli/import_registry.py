"""import-mlflow's copy steps for the registry: registered models, their versions (with
their files), stages and aliases, through app/registry/imports.py and
app/artifacts/content.py."""

from datetime import UTC, datetime
from functools import partial
from typing import Any

from app.cli.import_steps import ImportSteps, tags_of, time_from_ms
from app.client.mlflow_rest import MlflowSourceError

# MLflow's stage names -> modelgraph's stages.
STAGES = {
    "None": "DEVELOPMENT",
    "Staging": "STAGING",
    "Production": "PRODUCTION",
    "Archived": "ARCHIVED",
}


def _logged_model_id(source: str | None) -> str | None:
    if source and source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    return None


class RegistrySteps(ImportSteps):
    async def _registry(self, wanted: list[str] | None) -> None:
        found = [m async for m in self.reader.registered_models()]
        if wanted is not None:
            names = {m["name"] for m in found}
            for name in sorted(set(wanted) - names):
                self.summary.failed.append(
                    {"kind": "model", "name": name, "reason": "not found in the source"}
                )
            found = [m for m in found if m["name"] in set(wanted)]
        for i, model in enumerate(found, 1):
            self.phase = f"model {i}/{len(found)} {model['name']}"
            tags = tags_of(model.get("tags"))
            if tags.get("mlflow.prompt.is_prompt") == "true":
                self._skip("model", model["name"], "an MLflow prompt, not a model")
                continue
            await self._guard("model", model["name"], partial(self._model, model))

    async def _model(self, source: dict[str, Any]) -> None:
        from app.registry import imports
        from app.registry.stages import Stage

        name = source["name"]
        async with self.db.unit_of_work() as session:
            _model, created = await imports.import_model(
                session,
                name=name,
                description=source.get("description") or None,
                tags=tags_of(source.get("tags")),
                created_at=time_from_ms(source.get("creation_timestamp")),
                updated_at=time_from_ms(source.get("last_updated_timestamp")),
                actor=self.actor,
            )
        self._count("models", created)
        versions = await self.reader.versions(name)
        async with self.db.read() as session:
            have = await imports.version_numbers(session, model=name)
        imported: list[dict[str, Any]] = []
        for version in versions:
            number = int(version["version"])
            if version.get("status", "READY") != "READY":
                self._skip("version", f"{name}/{number}", f"status {version.get('status')}")
                continue
            before = len(self.summary.failed)
            await self._guard(
                "version", f"{name}/{number}", partial(self._version, name, version, have)
            )
            if len(self.summary.failed) == before:
                imported.append(version)
        # Oldest change first, and at one instant an archiving before a promotion, so the
        # version MLflow promoted last is the one left in PRODUCTION.
        order = {"Archived": 0, "None": 1, "Staging": 2, "Production": 3}
        imported.sort(
            key=lambda v: (
                int(v.get("last_updated_timestamp") or 0),
                order.get(v.get("current_stage", "None"), 1),
            )
        )
        for version in imported:
            stage = Stage(STAGES.get(version.get("current_stage") or "None", "DEVELOPMENT"))
            at = time_from_ms(version.get("last_updated_timestamp")) or datetime.now(UTC)

            async def move(v: dict[str, Any] = version, s: Stage = stage, t: datetime = at) -> None:
                async with self.db.unit_of_work() as session:
                    moves = await imports.import_stage(
                        session,
                        model=name,
                        version=int(v["version"]),
                        stage=s,
                        at=t,
                        source_name=f"MLflow {self.reader.url}",
                        actor=self.actor,
                    )
                self._count("transitions", True, len(moves))

            await self._guard("stage", f"{name}/{version['version']}", move)
        detail = await self.reader.registered_model(name)
        for alias in detail.get("aliases", []):

            async def point(a: dict[str, Any] = alias) -> None:
                async with self.db.unit_of_work() as session:
                    created = await imports.add_missing_alias(
                        session,
                        model=name,
                        alias=a["alias"],
                        version=int(a["version"]),
                        actor=self.actor,
                    )
                self._count("aliases", created)

            await self._guard("alias", f"{name}@{alias['alias']}", point)

    async def _version(self, name: str, source: dict[str, Any], have: set[int]) -> None:
        from app.registry import imports

        number = int(source["version"])
        # A version already here keeps its files: they are not downloaded again.
        files = [] if number in have else await self._version_files(source)
        async with self.db.unit_of_work() as session:
            _version, created = await imports.import_version(
                session,
                model=name,
                version=number,
                run_id=source.get("run_id") or None,
                source=source.get("source") or None,
                description=source.get("description") or None,
                tags=tags_of(source.get("tags")),
                created_at=time_from_ms(source.get("creation_timestamp")),
                files=files,
                run_link=source.get("run_link") or None,
                logged_model_id=source.get("model_id") or _logged_model_id(source.get("source")),
                actor=self.actor,
            )
        self._count("versions", created)

    async def _version_root(self, source: dict[str, Any]) -> str | None:
        """Where the version's files are on the artifact proxy, if they are there."""
        uri = source.get("storage_location") or ""
        origin = source.get("source") or ""
        if not uri and origin.startswith("models:/m-"):
            model_id = origin.removeprefix("models:/").split("/")[0]
            answer = await self.reader.api("GET", f"logged-models/{model_id}")
            uri = answer.get("model", {}).get("info", {}).get("artifact_uri", "")
        elif not uri and origin.startswith("runs:/"):
            run_id, _, sub = origin.removeprefix("runs:/").partition("/")
            answer = await self.reader.api("GET", "runs/get", params={"run_id": run_id})
            base = answer["run"]["info"].get("artifact_uri", "")
            uri = f"{base.rstrip('/')}/{sub.strip('/')}" if sub.strip("/") else base
        elif not uri:
            uri = origin
        return self.reader.proxied_path(uri)

    async def _version_files(self, source: dict[str, Any]) -> list[tuple[str, str, int]]:
        from app.artifacts.content import store_content

        root = await self._version_root(source)
        label = f"{source['name']}/{source['version']}"
        if root is None:
            self._skip(
                "versionFiles", label, f"{source.get('source')} is not on the artifact proxy"
            )
            return []
        try:
            entries = await self.reader.walk_artifacts(root)
        except MlflowSourceError as exc:
            if exc.status is None:
                raise
            self._skip("versionFiles", label, exc.message)
            return []
        if not entries:
            # A runs:/ source naming one file rather than a folder.
            parent, _, leaf = root.rpartition("/")
            listed = await self.reader.list_artifacts(parent) if parent else []
            if any(e["path"] == leaf and not e.get("is_dir") for e in listed):
                root, entries = parent, [e for e in listed if e["path"] == leaf]
        files = []
        for entry in entries:
            uploaded = await store_content(
                self.db,
                self.blobs,
                self.reader.download(root, entry["path"]),
                max_bytes=self.max_bytes,
            )
            files.append((entry["path"], uploaded.digest, uploaded.size))
            self._count("versionFiles", True)
        return files
