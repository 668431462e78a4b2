"""Field descriptions that several registry mutations' inputs share, written once."""

IDEMPOTENCY = (
    "Retry-safe: a repeat with the same key and input returns the first answer and changes "
    "nothing; the same key with another input is a Conflict. Keys are kept 48 hours. The "
    "answer is the first one as it was: its versions' fields, stage history, validations and "
    "aliases as of then (a model or run reached from them is read as it is now)."
)

EXPECTED_PRODUCTION = (
    "Compare-and-set: the version number you saw in PRODUCTION (0: none). If the model "
    "moved on since, the answer is a Conflict with the current state and nothing changes."
)
