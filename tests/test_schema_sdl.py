from pathlib import Path

from app.graphql.schema import export_sdl

SDL = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_committed_schema_matches_the_live_schema():
    # schema.graphql is generated: `modelgraph export-schema > schema.graphql`
    assert SDL.read_text() == export_sdl(), "schema.graphql is stale: run modelgraph export-schema"


def test_stage_names_are_the_contract():
    sdl = export_sdl()
    assert "enum Stage {\n" in sdl
    for stage in ("DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED"):
        assert f"  {stage}\n" in sdl
