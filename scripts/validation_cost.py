"""How long validation can hold the event loop, and how much memory a cached document keeps.

    .venv/bin/python scripts/validation_cost.py

Validation time: documents shaped to make graphql-core's OverlappingFieldsCanBeMerged rule
quadratic (many same-named fields, identical subtrees, fragments selecting the same
fields), each as large as the default limits let it be, validated the way the server
validates them (app.graphql.limits.Checks). Prints each one's best-of-3 time and outcome,
and the worst time among those accepted and those refused.

Memory: distinct documents of several shapes parsed and validated and kept, the memory
they hold per character of their text measured with tracemalloc (the basis of
BYTES_PER_CHARACTER in app/graphql/limits.py).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable

from graphql import GraphQLSyntaxError, parse

from app.graphql.limits import Checks, QueryLimits
from app.graphql.schema import build_schema

LIMITS = QueryLimits()


def chain(depth: int) -> str:
    levels = (depth - 2) // 3
    return "experiments{nodes{" + "runs{nodes{experiment{" * levels + "id" + "}}}" * levels + "}}"


def shapes(fields: int) -> dict[str, str]:
    """Documents of about `fields` fields each."""
    docs = {}
    for depth in (2, 5, 8, 11):
        docs[f"identical subtrees, depth {depth}"] = (
            "{" + chain(depth) * (fields // (depth + 1)) + "}"
        )
    docs["one field repeated"] = "{viewer{" + "name " * fields + "}}"
    docs["__typename repeated"] = "{" + "__typename " * fields + "}"
    run = "fragment R on Run { id name status }"
    docs["fragment at the leaves"] = (
        "{" + "experiments{nodes{runs{nodes{...R}}}}" * (fields // 5) + "}" + run
    )
    many = " ".join(
        f"fragment E{i} on Experiment {{ id runs{{nodes{{id}}}} }}" for i in range(fields // 4)
    )
    spreads = " ".join(f"...E{i}" for i in range(fields // 4))
    docs["many fragments, same fields"] = "{experiments{nodes{" + spreads + "}}} " + many
    docs["inline fragments"] = (
        "{experiments{nodes{" + "... on Experiment{id}" * (fields // 2) + "}}}"
    )
    return docs


def timing() -> None:
    schema = build_schema(LIMITS)._schema
    checks = Checks(LIMITS)
    worst = {"accepted": 0.0, "refused": 0.0}
    for fields in (100, 250, LIMITS.fields, 2 * LIMITS.fields):
        for name, text in shapes(fields).items():
            try:
                document = parse(text, max_tokens=LIMITS.tokens)
            except GraphQLSyntaxError:  # over the token limit: never validated
                print(f"{fields:5} {name:32} refused by the parser")
                continue
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                errors = checks.validate(schema, document)
                best = min(best, time.perf_counter() - start)
            codes = sorted({(e.extensions or {}).get("code") or "?" for e in errors})
            outcome = "refused" if codes else "accepted"
            worst[outcome] = max(worst[outcome], best)
            print(f"{fields:5} {name:32} {best * 1000:7.1f} ms  {outcome} {' '.join(codes)}")
    print({k: f"{v * 1000:.1f} ms" for k, v in worst.items()})


def memory() -> None:
    schema = build_schema(LIMITS)._schema
    checks = Checks(LIMITS)
    makers: dict[str, Callable[[int], str]] = {
        "one-character tokens": lambda i: "{" + "a{b}" * 1200 + "}" + f"#{i}",
        "aliased fields with arguments": lambda i: (
            "{" + " ".join(f'a{j}:experiment(name:"e{i}_{j}"){{id name}}' for j in range(30)) + "}"
        ),
        "repeated selections": lambda i: (
            "{" + f"experiments(first:{i + 1}){{nodes{{id}}}}" * 200 + "}"
        ),
        "a tiny query": lambda i: f"{{experiments(first:{i + 1}){{nodes{{id}}}}}}",
    }
    for name, make in makers.items():
        kept, characters = [], 0
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(40):
            text = make(i)
            characters += len(text)
            document = parse(text, max_tokens=100_000)
            kept.append((text, document, checks.validate(schema, document)))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        print(
            f"{name:32} {grown / characters:6.1f} bytes per character, {grown / 40:9.0f} per document"
        )


if __name__ == "__main__":
    timing()
    memory()
