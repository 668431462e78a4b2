"""The schema fuzzed: thousands of well-typed and ill-typed operations, and malformed
requests, never make the server fail badly. Every answer is below 500, carries no
traceback, no INTERNAL_SERVER_ERROR and no unmasked internal message, and the server logs
no error for it; afterwards the database passes the integrity check and still answers.

Well-typed operations come from hypothesis-graphql (Mode.POSITIVE) with realistic scalars
and the names of seeded rows, so most reach resolvers; ill-typed ones from its
Mode.NEGATIVE, plus wrong literals, wrong variable values, junk documents and bodies,
wrong content types and methods, and bad credentials.

How it runs: in process, against the ASGI app of the `client` fixture, so the server's
log (the traceback behind a masked error) is caught per request. The app lives on the
test's event loop. pytest-asyncio can run an async @given test, but as one run per
example, with nothing after the last; so here the property is a plain function that
`asyncio.to_thread` runs, each example hands its request to the loop
(`run_coroutine_threadsafe`), shrinking works as usual, and the integrity check follows
in the same test. A failure's type is made from where the server raised, so Hypothesis
tells distinct bugs apart and shrinks each; kinds of junk are separate tests because
Hypothesis stops looking soon after its first bug.

About 3,100 requests, 85 s on two cores (SQLite or PostgreSQL) when nothing fails; a
failure costs more, for shrinking. Deterministic by default (`derandomize`);
MODELGRAPH_FUZZ_SEED=<int> explores elsewhere, MODELGRAPH_FUZZ_SCALE=10 ten times as far.
"""

import asyncio
import base64
import json
import logging
import os
import re
import string
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import graphql
import httpx
import hypothesis_graphql as hg
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from app.db import Database
from app.graphql.schema import export_sdl
from tests.conftest import GraphQLClient
from tests.factories import make_run, make_version
from tests.integrity import integrity_problems, snapshot

# Minutes of generated operations: not in ./scripts/test --fast.
pytestmark = pytest.mark.slow

SCHEMA = graphql.build_schema(export_sdl())
SEED = os.environ.get("MODELGRAPH_FUZZ_SEED")
SCALE = float(os.environ.get("MODELGRAPH_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, round(n * SCALE))


INT32, INT64 = 2**31, 2**63
EXPERIMENT, MODEL = "fraud-detection", "fraud-detector"
# Names the seeded rows answer to, so generated operations find things.
NAMES = [
    EXPERIMENT,
    MODEL,
    "exp",
    "Default",
    "champion",
    "challenger",
    "auc",
    "loss",
    "max_depth",
    "team",
    "integration-tests",
    "s3://models/fraud/7",
]

# What only an internal exception says, never a refusal written for a client.
INTERNALS = re.compile(
    r"Traceback|File \"|sqlalchemy|asyncpg|aiosqlite|sqlite3|psycopg|Background on this error"
    r"|object at 0x|has no attribute|NoneType|positional argument|keyword argument"
    r"|not subscriptable|unhashable|int_max_str_digits|integer string conversion"
    r"|maximum recursion depth|codec can't|\b[A-Z][a-z]\w*(?:Error|Exception)\b"
)


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# --- values -------------------------------------------------------------------------------

texts = st.text(max_size=30)  # any code point: NUL, controls, bidi, astral
datetimes = st.builds(
    lambda moment, offset: moment.replace(tzinfo=offset).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.none()
    | st.just(UTC)
    | st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
# Mostly page sizes and version numbers; sometimes at or over a cap, or at Int's ends.
int32 = st.integers(0, 12) | st.sampled_from([-1, 50, 500, 501, 10_000, 10_001, -INT32, INT32 - 1])
int64 = (
    st.integers(-3, 1_000) | st.sampled_from([-INT64, INT64 - 1]) | st.integers(-INT64, INT64 - 1)
)
epoch_millis = st.integers(0, 4_102_444_800_000) | st.sampled_from([-1, -INT64, INT64 - 1])
finite = st.floats(allow_nan=False, allow_infinity=False)
non_finite = st.sampled_from(["NaN", "Infinity", "-Infinity"])
# Numbers too big for any column or for a float, and digit strings around the 4,300
# digits Python's int() reads.
huge = st.sampled_from([INT32, INT64, 2**64, -(2**64) - 1, 10**30, 10**400]) | st.integers(
    10**19, 10**40
)
huge_digits = (st.sampled_from([20, 400, 6_000]) | st.integers(4_290, 4_310)).map(lambda n: "9" * n)


def cursor_of(values: Any) -> str:
    raw = json.dumps(values).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Cursors that decode, to the wrong shapes, and ones that do not decode at all.
fake_cursors = st.one_of(
    st.sampled_from(["", "!!!", "=", "null", "e30", "W10", "WzEsMl0", "bnVsbA", "x" * 600]),
    st.recursive(
        st.none() | st.booleans() | int64 | finite | texts | datetimes,
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=4,
    ).map(cursor_of),
)
# JSON of any kind, for a value of the wrong type; NaN and Infinity go as the bare tokens
# Python's json reads.
junk_json = st.recursive(
    st.none()
    | st.booleans()
    | huge
    | st.floats()
    | texts
    | non_finite
    | st.sampled_from(["", "\x00", "nan", "1e999", "2026-13-45T25:61:00", "NOT_AN_ENUM"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


# Literals of the wrong kind for most scalars: strings for numbers, numbers past any range
# or 6,000 digits long, "nan", objects and lists where one value goes.
wrong_literals = st.one_of(
    texts.map(nodes.String),
    st.sampled_from(["nan", "inf", "1e999", "0x10", "", "\x00"]).map(nodes.String),
    fake_cursors.map(nodes.String),
    st.booleans().map(nodes.Boolean),
    huge.map(nodes.Int),
    huge_digits.map(lambda digits: graphql.IntValueNode(value=digits)),
    st.sampled_from(["1e999", "-1e999", "1.5"]).map(lambda v: graphql.FloatValueNode(value=v)),
    st.just(nodes.Enum("NaN")),
    st.just(nodes.Object([])),
    st.lists(texts.map(nodes.String), max_size=2).map(nodes.List),
)


class Pools:
    """Values for each scalar, naming the seeded rows: run ids and real cursors."""

    def __init__(self, run_ids: list[str], cursors: list[str]) -> None:
        self.run_ids = run_ids
        self.cursors = cursors

    def strings(self) -> st.SearchStrategy[str]:
        return st.one_of(
            st.sampled_from(NAMES),
            st.sampled_from(self.run_ids),
            st.sampled_from(self.cursors),
            texts,
        )

    def ids(self) -> st.SearchStrategy[str]:
        return st.sampled_from(self.run_ids) | texts

    def literals(self) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
        """Valid literals, built-in scalars included (so strings name seeded rows and ints
        are page sizes and version numbers)."""
        metric = finite.map(nodes.Float) | st.integers(-10, 10).map(nodes.Int)
        metric |= non_finite.map(nodes.String)
        return {
            "String": self.strings().map(nodes.String),
            "ID": self.ids().map(nodes.String),
            "Int": int32.map(nodes.Int),
            "Float": finite.map(nodes.Float),
            "MetricValue": metric,
            "EpochMillis": epoch_millis.map(nodes.Int),
            "Long": int64.map(nodes.Int),
            "MetricValueList": st.lists(metric, max_size=6).map(nodes.List),
            "LongList": st.lists(int64.map(nodes.Int), max_size=6).map(nodes.List),
            "DateTime": datetimes.map(nodes.String),
            "Boolean": st.booleans().map(nodes.Boolean),
        }

    def wrong_literals(self) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
        """Valid literals, or ones of the wrong kind."""
        return {name: right | wrong_literals for name, right in self.literals().items()}

    def json(self) -> dict[str, st.SearchStrategy[Any]]:
        """Valid variable values (JSON) for each scalar."""
        metric = finite | st.integers(-10, 10) | non_finite
        return {
            "String": self.strings() | fake_cursors,
            "ID": self.ids(),
            "Int": int32,
            "Float": finite,
            "Boolean": st.booleans(),
            "MetricValue": metric,
            "EpochMillis": epoch_millis,
            "Long": int64,
            "MetricValueList": st.lists(metric, max_size=6),
            "LongList": st.lists(int64, max_size=6),
            "DateTime": datetimes,
        }


class VariableValues:
    """JSON for a variable of a GraphQL input type: well-typed, or wrong at some depth."""

    def __init__(self, scalars: dict[str, st.SearchStrategy[Any]]) -> None:
        self.scalars = scalars
        self.objects: dict[str, st.SearchStrategy[Any]] = {}

    def of(self, type_: graphql.GraphQLInputType) -> st.SearchStrategy[Any]:
        nullable = not graphql.is_non_null_type(type_)
        named = graphql.get_nullable_type(type_)
        if isinstance(named, graphql.GraphQLList):
            right: st.SearchStrategy[Any] = st.lists(self.of(named.of_type), max_size=4)
        elif isinstance(named, graphql.GraphQLEnumType):
            right = st.sampled_from(sorted(named.values))
        elif isinstance(named, graphql.GraphQLInputObjectType):
            right = st.deferred(lambda: self.input_object(named))
        else:
            right = self.scalars[named.name]
        return st.one_of(right, junk_json, *([st.none()] if nullable else []))

    def input_object(self, type_: graphql.GraphQLInputObjectType) -> st.SearchStrategy[Any]:
        if type_.name not in self.objects:
            required = graphql.is_required_input_field
            fields = type_.fields.items()
            whole = st.fixed_dictionaries(
                {n: self.of(f.type) for n, f in fields if required(f)},
                optional={n: self.of(f.type) for n, f in fields if not required(f)},
            )
            # With an unknown field, or without a field it may need.
            extra = st.tuples(whole, texts, junk_json).map(lambda t: {**t[0], t[1]: t[2]})
            less = whole.flatmap(
                lambda d: (
                    st.sampled_from(sorted(d)).map(lambda k: {x: d[x] for x in d if x != k})
                    if d
                    else st.just(d)
                )
            )
            self.objects[type_.name] = st.one_of(whole, extra, less)
        return self.objects[type_.name]


def field_operations() -> list[tuple[str, dict[str, graphql.GraphQLInputType]]]:
    """Every root field as an operation that takes each of its arguments as a variable."""
    operations = []
    for keyword, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            declared = ", ".join(f"${a}: {arg.type}" for a, arg in field.args.items())
            passed = ", ".join(f"{a}: ${a}" for a in field.args)
            header = f"{keyword}({declared})" if declared else keyword
            call = f"{name}({passed})" if passed else name
            types = {a: arg.type for a, arg in field.args.items()}
            operations.append((f"{header} {{ {call} {{ __typename }} }}", types))
    return operations


def holds(type_: graphql.GraphQLInputType, scalar: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a value of `type_` is, or can contain, a `scalar`."""
    named = graphql.get_named_type(type_)
    if isinstance(named, graphql.GraphQLInputObjectType):
        return named.name not in seen and any(
            holds(f.type, scalar, seen | {named.name}) for f in named.fields.values()
        )
    return named.name == scalar


def operations_taking(scalar: str, literals: dict[str, Any]) -> st.SearchStrategy[str]:
    """Queries and mutations of the root fields with an argument that can hold `scalar`."""
    strategies = []
    for make, root in ((hg.queries, SCHEMA.query_type), (hg.mutations, SCHEMA.mutation_type)):
        assert root is not None
        fields = [
            name
            for name, field in root.fields.items()
            if any(holds(arg.type, scalar) for arg in field.args.values())
        ]
        if fields:
            strategies.append(make(SCHEMA, fields=fields, custom_scalars=literals))
    return st.one_of(*strategies)


# Examples per scalar: more for ours, whose parsing is our code.
SCALARS = {
    "String": 20,
    "ID": 20,
    "Int": 20,
    "Float": 20,
    "Boolean": 20,
    "MetricValue": 40,
    "MetricValueList": 40,
    "EpochMillis": 40,
    "Long": 40,
    "LongList": 40,
    "DateTime": 40,
}


# --- malformed requests -------------------------------------------------------------------

READS = [
    "{ viewer { name role } }",
    f'{{ experiment(name: "{EXPERIMENT}") {{ name runs(first: 5) {{ nodes {{ id name }} }} }} }}',
    f'{{ runs(experiment: "{EXPERIMENT}", filter: {{metrics: [{{metric: "auc", op: GT, value: 0.5}}]}}, orderBy: {{metric: "auc", direction: DESC}}, first: 3) {{ edges {{ cursor node {{ id metric(key: "auc") {{ value min max }} }} }} pageInfo {{ hasNextPage endCursor }} }} }}',
    f'{{ bestRun(experiment: "{EXPERIMENT}", metric: "auc", goal: MAXIMIZE, aggregate: MAX) {{ id params {{ key value }} }} }}',
    f'{{ model(name: "{MODEL}") {{ productionVersion {{ version }} versions(first: 5) {{ nodes {{ version stage }} }} versionAt(stage: PRODUCTION, at: "2030-01-01T00:00:00Z") {{ version }} }} }}',
    f'{{ modelVersion(model: "{MODEL}", alias: "champion") {{ version stage validations {{ check status }} }} }}',
    "{ events(first: 5) { nodes { cursor type model } pageInfo { endCursor } } }",
    "query Q($n: String!) { experiment(name: $n) { name } } query R { viewer { name } }",
]
# Documents that are wrong as a whole rather than in a value.
ODD_DOCUMENTS = [
    "",
    " ",
    "{}",
    "query",
    "mutation { }",
    "subscription { lifecycleEvents { cursor type } }",
    'subscription { runMetrics(runId: "x") { points { key } } }',
    "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }",
    "{ ...Missing }",
    "{ viewer { name @include(if: $undefined) } }",
    "{ viewer @unknown { name } }",
    "query($a: Int, $a: Int) { viewer { name } }",
    "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }",
    '{ __type(name: "Run") { fields { name args { name type { name } } } } }',
    "mutation { createExperiment(input: {}) { __typename } }",
    "{ viewer { name } } extra { viewer { name } }",
    "#" + "comment " * 1000,
    '"""' + "x" * 3000,
]


def nested(depth: int) -> str:
    return "{ viewer " + "{ name " * depth + "}" * depth + " }"


def aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: viewer {{ name }}" for i in range(count)) + " }"


def edited(document: str, at: int, kind: int, char: str) -> str:
    at = min(at, len(document))
    if kind == 0:
        return document[:at]
    if kind == 1:
        return document[:at] + char + document[at:]
    return document[:at] + document[at + 1 :]


def encoded(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


def posted(documents: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON POST of each document, sometimes with junk beside it."""
    extras = st.fixed_dictionaries(
        {}, optional={"variables": junk_json, "operationName": st.sampled_from(["Q", "R", "Nope"])}
    )
    bodies = st.tuples(documents, extras).map(lambda t: encoded({"query": t[0], **t[1]}))
    return bodies.map(lambda body: {"body": body})


def with_variables_of(nesting: bytes) -> bytes:
    return b'{"query": "{ viewer { name } }", "variables": {"v": ' + nesting + b"}}"


json_shapes = st.one_of(
    junk_json,
    st.fixed_dictionaries(
        {"query": st.sampled_from(READS) | junk_json},
        optional={
            "variables": junk_json,
            "operationName": junk_json,
            "extensions": junk_json,
            "id": junk_json,
        },
    ),
    st.lists(st.just({"query": READS[0]}), max_size=3),  # a batch
)
content_types = st.sampled_from(
    [
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=nope",
        "application/graphql",
        "application/graphql-response+json",
        "text/plain",
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=xx",
        "multipart/mixed; boundary=xx",
        "application/xml",
        "*/*",
        "",
        ";;;",
        "\x00",
        None,
    ]
)
plausible_bodies = st.one_of(
    st.sampled_from(READS).map(lambda q: encoded({"query": q})),
    st.sampled_from(READS).map(str.encode),
    st.sampled_from(READS).map(lambda q: b"query=" + q.encode()),
    st.sampled_from(
        [
            b'--xx\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
            b'{"query": "{ viewer { name } }"}\r\n--xx--\r\n',
            b'--xx\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0": ["x"]}\r\n--xx',
        ]
    ),
    st.binary(max_size=100),
)

# Each kind of malformed request: what goes into Fuzzer.request.
MALFORMED: dict[str, tuple[int, st.SearchStrategy[dict[str, Any]]]] = {
    "odd documents": (60, posted(st.sampled_from(ODD_DOCUMENTS))),
    "edited documents": (
        200,
        posted(
            st.builds(
                edited,
                st.sampled_from(READS),
                st.integers(0, 400),
                st.integers(0, 2),
                st.characters() | st.sampled_from(list('{}()[]"$@!:.\\\x00\n')),
            )
        ),
    ),
    "random documents": (
        120,
        posted(st.text(max_size=200) | st.text(alphabet=string.printable, max_size=200)),
    ),
    "deep and wide documents": (
        40,
        posted(st.integers(1, 3_000).map(nested) | st.integers(1, 200).map(aliased)),
    ),
    "huge literals": (
        40,
        posted(
            huge_digits.map(
                lambda n: f'{{ modelVersion(model: "{MODEL}", version: {n}) {{ version }} }}'
            )
            | huge_digits.map(lambda n: f"{{ experiments(first: {n}) {{ nodes {{ name }} }} }}")
        ),
    ),
    "json shapes": (100, json_shapes.map(lambda b: {"body": encoded(b)})),
    "bytes": (80, st.binary(max_size=200).map(lambda b: {"body": b})),
    "encodings": (
        40,
        st.one_of(
            st.sampled_from(READS).map(lambda q: json.dumps({"query": q}).encode("utf-16")),
            st.sampled_from(READS).map(lambda q: json.dumps({"query": q}).encode("utf-32")),
            st.tuples(
                st.sampled_from([b"\xff\xfe", b"\xfe\xff", b"\x80", b"\xc3", b"\x00"]), texts
            ).map(lambda t: t[0] + encoded({"query": t[1]})),
        ).map(lambda b: {"body": b}),
    ),
    "deep JSON": (
        30,
        st.integers(1, 100_000).map(lambda n: {"body": with_variables_of(b"[" * n + b"]" * n)}),
    ),
    "huge JSON numbers": (
        30,
        st.one_of(
            huge_digits,
            huge_digits.map("-{}".format),
            huge_digits.map("0.{}".format),
            st.sampled_from(["1e400", "-1e400", "1e-400", "-0", "1E+99999"]),
        ).map(lambda n: {"body": with_variables_of(n.encode())}),
    ),
    "content types": (
        80,
        st.fixed_dictionaries(
            {"body": plausible_bodies, "content_type": content_types},
            optional={"request_id": st.binary(max_size=80)},
        ),
    ),
    "methods": (
        50,
        st.fixed_dictionaries(
            {
                "method": st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"]),
                "body": plausible_bodies,
            }
        ),
    ),
    "GET": (
        80,
        st.fixed_dictionaries(
            {
                "method": st.just("GET"),
                "content_type": st.none(),
                "params": st.fixed_dictionaries(
                    {"query": st.sampled_from(READS + ODD_DOCUMENTS) | texts},
                    optional={
                        "variables": texts | junk_json.map(encoded).map(bytes.decode),
                        "operationName": texts,
                    },
                ),
            }
        ),
    ),
}


def wrong_credentials(secret: str) -> st.SearchStrategy[bytes | None]:
    """Authorization values that must not authenticate: none, malformed, or a near miss of
    the real secret (never the secret itself, bare or as `Bearer <secret>`)."""
    near_misses = [
        secret[:-1],
        secret[:-1] + ("A" if secret[-1] != "A" else "B"),
        secret + "x",
        "x" + secret,
        secret.swapcase(),
        secret[3:],
        "mg_",
    ]
    schemes = st.sampled_from(["Bearer ", "bearer ", "BEARER ", "Bearer\t", "Basic ", "Token ", ""])
    values = st.one_of(
        st.sampled_from(["", " ", "Bearer", "Bearer ", "Bearer  ", "Basic", "null", "undefined"]),
        st.tuples(schemes, st.sampled_from(near_misses)).map("".join),
        st.tuples(schemes, texts).map("".join),
        st.integers(100, 100_000).map(lambda n: "Bearer mg_" + "a" * n),
    )
    return st.none() | values.map(str.encode) | st.binary(max_size=80)


# --- the harness --------------------------------------------------------------------------


class ServerLog(logging.Handler):
    """The errors the server logs. The app's own records are diverted here (not `caplog`,
    or pytest would print the tracebacks of every shrinking step): a failure shows the
    log of its own request."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def divert(self, record: logging.LogRecord) -> bool:
        self.handle(record)
        return False


class Fuzzer:
    """Sends requests to the app on the test's event loop, from Hypothesis's thread, and
    fails on any answer that shows a bug."""

    def __init__(self, client: httpx.AsyncClient, log: ServerLog) -> None:
        self.client = client
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.sent = 0

    def build(
        self,
        method: str = "POST",
        *,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        params: dict[str, str] | None = None,
        authorization: bytes | str | None = "keep",
        request_id: bytes | None = None,
    ) -> httpx.Request:
        headers: dict[str, Any] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if authorization not in ("keep", None):
            headers["Authorization"] = authorization
        if request_id is not None:
            headers["X-Request-ID"] = request_id
        request = self.client.build_request(
            method, "/graphql", content=body, params=params, headers=headers
        )
        if authorization is None:
            del request.headers["Authorization"]
        return request

    async def exchange(self, request: httpx.Request) -> httpx.Response:
        """Send one request on the loop and check its answer."""
        self.log.records.clear()
        response = await self.client.send(request)
        self.sent += 1
        self.check(request, response, list(self.log.records))
        return response

    def request(self, method: str = "POST", **options: Any) -> httpx.Response:
        """`exchange`, from Hypothesis's thread."""
        exchange = self.exchange(self.build(method, **options))
        return asyncio.run_coroutine_threadsafe(exchange, self.loop).result(timeout=120)

    def post(self, document: str, **options: Any) -> httpx.Response:
        return self.request(body=encoded({"query": document}), **options)

    def check(
        self, request: httpx.Request, response: httpx.Response, records: list[logging.LogRecord]
    ) -> None:
        errors = [r for r in records if r.levelno >= logging.ERROR]
        problems = answer_problems(response) + [f"logged: {r.getMessage()}" for r in errors]
        if problems:
            raised = next((r.exc_info[1] for r in errors if r.exc_info), None)
            bug = bug_type(raised, problems[0])
            where = f"{bug.origin}\n" if raised is not None else ""
            raise bug(
                f"{'; '.join(problems)}\n{where}{describe(request, response)}{server_log(errors)}"
            )

    async def run(
        self, strategy: st.SearchStrategy[Any], max_examples: int, test: Callable
    ) -> None:
        """`test` on `max_examples` (times MODELGRAPH_FUZZ_SCALE) drawn from `strategy`, in
        a worker thread."""

        def example(case: Any) -> None:
            test(case)

        prop = fuzz_settings(examples(max_examples))(given(strategy)(example))
        if SEED is not None:
            prop = seed(int(SEED))(prop)
        sent = self.sent
        await asyncio.to_thread(prop)
        # Hypothesis stops early if it runs out of distinct cases: none of these may.
        assert self.sent - sent >= examples(max_examples)


class ServerBug(AssertionError):
    """An answer that shows a bug. Each place in the server that raised one gets its own
    subclass, so that Hypothesis tells the bugs apart (it knows them by exception type and
    location) while the failure shows only the server's log, not its frames."""

    origin = ""


_BUG_TYPES: dict[tuple[Any, ...], type[ServerBug]] = {}


def bug_type(raised: BaseException | None, problem: str) -> type[ServerBug]:
    if raised is None:
        key: tuple[Any, ...] = (problem.split(":")[0],)
        origin = ""
    else:
        frame = traceback.extract_tb(raised.__traceback__)[-1]
        key = (type(raised), frame.filename, frame.lineno)
        origin = f"raised: {type(raised).__name__} at {frame.filename}:{frame.lineno}"
    if key not in _BUG_TYPES:
        _BUG_TYPES[key] = type("ServerBug", (ServerBug,), {"origin": origin})
    return _BUG_TYPES[key]


def answer_problems(response: httpx.Response) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"status {response.status_code}")
    if INTERNALS.search(response.text):
        problems.append("internals in the answer")
    try:
        body = response.json()
    except ValueError:
        return problems
    for error in (body.get("errors") or []) if isinstance(body, dict) else []:
        if (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR":
            problems.append(f"masked internal error: {error['message']}")
    return problems


def describe(request: httpx.Request, response: httpx.Response) -> str:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "accept")}
    return (
        f"request: {request.method} {request.url} {headers}\n"
        f"  body: {abridged(request.content)}\n"
        f"answer: {response.status_code} {response.text[:1500]}\n"
    )


def abridged(content: bytes) -> str:
    """The body, with long runs of one byte (a huge number, deep nesting) counted."""
    text = re.sub(rb"(.)\1{31,}", lambda m: b"<%r x %d>" % (m[1], len(m[0])), content, flags=re.S)
    return repr(text[:3000]) + (" ..." if len(text) > 3000 else "")


def server_log(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "".join(f"server: {formatter.format(r)}\n" for r in records)


def executed(response: httpx.Response) -> bool:
    """Past validation: there is data, or an error from a resolver (it has a path)."""
    body = response.json()
    return body.get("data") is not None or any("path" in e for e in body.get("errors") or [])


@pytest.fixture
async def fuzzer(client: httpx.AsyncClient) -> AsyncIterator[Fuzzer]:
    log = ServerLog()
    app_loggers = [
        logging.getLogger(name)
        for name in list(logging.Logger.manager.loggerDict)
        if name.split(".")[0] == "modelgraph"
    ]
    for logger in app_loggers:
        logger.addFilter(log.divert)
    logging.getLogger().addHandler(log)  # errors from anywhere else (asyncio, a library)
    yield Fuzzer(client, log)
    logging.getLogger().removeHandler(log)
    for logger in app_loggers:
        logger.removeFilter(log.divert)


# --- seeded rows --------------------------------------------------------------------------

LOG_SERIES = """
mutation($run: ID!) {
  logMetrics(input: {runId: $run, series: [{key: "auc", values: [0.7, 0.8, "NaN"], steps: [1, 2, 3]}]}) {
    __typename
  }
}
"""
ALIAS_AND_VALIDATION = f"""
mutation {{
  setModelAlias(input: {{model: "{MODEL}", alias: "champion", version: 2}}) {{ __typename }}
  recordValidation(input: {{model: "{MODEL}", version: 3, check: "integration-tests",
                            status: PASSED}}) {{ __typename }}
}}
"""
CURSORS = f"""
{{
  experiments(first: 1) {{ pageInfo {{ endCursor }} }}
  runs(experiment: "{EXPERIMENT}", first: 1) {{ pageInfo {{ endCursor }} }}
  models(first: 1) {{ pageInfo {{ endCursor }} }}
  events(first: 2) {{ pageInfo {{ endCursor }} }}
  apiTokens(first: 1) {{ pageInfo {{ endCursor }} }}
}}
"""
VIEWER = "{ viewer { name role } }"


async def seed_rows(db: Database, gql: GraphQLClient) -> Pools:
    """An experiment with runs, params, tags and metric histories; a model with a version
    in every stage, an alias and a validation."""
    runs = [
        await make_run(
            db,
            experiment=EXPERIMENT,
            name=f"xgb-{i}",
            metrics={"auc": 0.8 + i / 100, "loss": 0.5 - i / 100},
            params={"max_depth": str(i)},
            tags={"team": "risk"},
        )
        for i in range(4)
    ]
    await make_run(db, experiment="exp")
    logged = await gql(LOG_SERIES, run=runs[0].id)
    assert logged["logMetrics"]["__typename"] == "LogMetricsSuccess"
    for run, stage in zip(runs, ["ARCHIVED", "PRODUCTION", "STAGING", None], strict=True):
        await make_version(db, model=MODEL, run_id=run.id, stage=stage)
    done = await gql(ALIAS_AND_VALIDATION)
    assert {p["__typename"] for p in done.values()} == {
        "SetModelAliasSuccess",
        "RecordValidationSuccess",
    }
    pages = await gql(CURSORS)
    cursors = [page["pageInfo"]["endCursor"] for page in pages.values()]
    return Pools([r.id for r in runs], [c for c in cursors if c])


async def assert_still_sound(db: Database, gql: GraphQLClient) -> None:
    assert await integrity_problems(db) == []
    assert (await gql(VIEWER))["viewer"]["role"] == "ADMIN"


# --- the tests ----------------------------------------------------------------------------


async def test_well_typed_queries_never_fail_badly_and_change_nothing(db, gql, fuzzer):
    # given seeded rows, and queries whose values name them
    pools = await seed_rows(db, gql)
    before = await snapshot(db)
    queries = hg.queries(SCHEMA, custom_scalars=pools.literals())
    ran = []

    # when hundreds are sent (each answer is checked as it comes)
    def send(query: str) -> None:
        ran.append(executed(fuzzer.post(query)))

    await fuzzer.run(queries, 400, send)

    # then most reached resolvers, reads wrote nothing, and the database is sound
    assert sum(ran) > 0.8 * len(ran)
    assert await snapshot(db) == before
    await assert_still_sound(db, gql)


async def test_well_typed_mutations_never_fail_badly_or_break_integrity(db, gql, fuzzer):
    # given seeded rows, and mutations (as ADMIN: every one is allowed) that name them
    pools = await seed_rows(db, gql)
    mutations = hg.mutations(SCHEMA, custom_scalars=pools.literals())
    ran = []

    # when hundreds are sent
    def send(mutation: str) -> None:
        ran.append(executed(fuzzer.post(mutation)))

    await fuzzer.run(mutations, 250, send)

    # then most reached resolvers, and whatever they did left the database sound
    assert sum(ran) > 0.8 * len(ran)
    await assert_still_sound(db, gql)


ILL_TYPED_EXAMPLES = {"queries": 300, "mutations": 200}


@pytest.mark.parametrize("root", list(ILL_TYPED_EXAMPLES))
async def test_ill_typed_operations_are_refused_and_change_nothing(root, db, gql, fuzzer):
    # given operations with a schema violation each (a wrong type, a missing argument, an
    # unknown enum value), some with wrong literals elsewhere too
    pools = await seed_rows(db, gql)
    before = await snapshot(db)
    strategy = hg.queries if root == "queries" else hg.mutations
    operations = strategy(SCHEMA, custom_scalars=pools.wrong_literals(), mode=hg.Mode.NEGATIVE)

    # when they are sent
    def send(operation: str) -> None:
        response = fuzzer.post(operation)
        # then each is refused whole
        assert response.json()["errors"], response.text
        assert not executed(response), response.text

    count = ILL_TYPED_EXAMPLES[root]
    await fuzzer.run(operations, count, send)

    # and nothing changed, and the database is sound
    assert await snapshot(db) == before
    await assert_still_sound(db, gql)


@pytest.mark.parametrize("scalar", list(SCALARS))
async def test_wrong_literals_are_refused_cleanly(scalar, db, gql, fuzzer):
    # given operations on the fields that can take `scalar`, each literal of it of the wrong
    # kind: strings for numbers, numbers past any range or 6,000 digits long, "nan", objects
    pools = await seed_rows(db, gql)
    operations = operations_taking(scalar, {**pools.literals(), scalar: wrong_literals})

    # when they are sent
    await fuzzer.run(operations, SCALARS[scalar], fuzzer.post)

    # then none failed badly, and the database is sound
    await assert_still_sound(db, gql)


async def test_wrong_variable_values_are_refused_cleanly(db, gql, fuzzer):
    # given every root field as an operation taking its arguments as variables, and values
    # that are well-typed or wrong at some depth (types, huge numbers, NaN, NUL and
    # control characters, unknown and missing fields, bad cursors)
    pools = await seed_rows(db, gql)
    values = VariableValues(pools.json())
    cases = st.sampled_from(field_operations()).flatmap(
        lambda op: st.tuples(
            st.just(op[0]),
            st.fixed_dictionaries({}, optional={n: values.of(t) for n, t in op[1].items()}),
        )
    )

    # when each is sent
    def send(case: tuple[str, dict[str, Any]]) -> None:
        document, variables = case
        fuzzer.request(body=encoded({"query": document, "variables": variables}))

    await fuzzer.run(cases, 400, send)

    # then none failed badly, and the database is sound
    await assert_still_sound(db, gql)


@pytest.mark.parametrize("kind", list(MALFORMED))
async def test_malformed_requests_are_refused_cleanly_and_change_nothing(kind, db, gql, fuzzer):
    # given junk of one kind (sent as ADMIN: what is wrong is the request, not the caller)
    await seed_rows(db, gql)
    before = await snapshot(db)
    count, requests = MALFORMED[kind]

    # when it is sent
    await fuzzer.run(requests, count, lambda options: fuzzer.request(**options))

    # then none failed badly, nothing changed, and the database is sound
    assert await snapshot(db) == before
    await assert_still_sound(db, gql)


async def test_a_body_over_the_limit_is_a_413(db, gql, fuzzer):
    # given a body one padding past 4 MiB
    body = b'{"query": "' + b" " * (4 * 2**20) + b'{ viewer { name } }"}'

    # when it is sent
    response = await fuzzer.exchange(fuzzer.build(body=body))

    # then it is refused as too large, in JSON
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    await assert_still_sound(db, gql)


async def test_bad_credentials_get_a_401_and_change_nothing(db, gql, fuzzer, admin_secret):
    # given requests without a token, with a malformed header, or with a near miss of the
    # real secret, each carrying a read or a write
    await seed_rows(db, gql)
    before = await snapshot(db)
    write = 'mutation { createExperiment(input: {name: "new"}) { __typename } }'
    cases = st.tuples(wrong_credentials(admin_secret), st.sampled_from([*READS, write]))

    # when they are sent
    def send(case: tuple[bytes | None, str]) -> None:
        authorization, document = case
        response = fuzzer.post(document, authorization=authorization)
        # then each is refused before any GraphQL runs, in JSON
        assert response.status_code == 401, describe(response.request, response)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    await fuzzer.run(cases, 300, send)

    # and nothing changed, and the real token still works
    assert await snapshot(db) == before
    await assert_still_sound(db, gql)
