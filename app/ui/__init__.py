"""The web UI: plain ES modules and CSS under static/, served at `/` and `/ui/...` by the
same process. It talks only to the public GraphQL API."""
