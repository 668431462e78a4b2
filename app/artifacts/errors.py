"""The artifact store's refusals and integrity failures."""

from app.errors import DomainError, ErrorCode, ValidationError


class TooLargeError(ValidationError):
    """A file over the size limit (the HTTP face answers 413)."""

    def __init__(self, field: str, limit: int) -> None:
        super().__init__(field, f"is larger than the limit of {limit} bytes", limit)


class BlobMissingError(DomainError):
    """A blob the database references has no object in the store: the store lost it."""

    code = ErrorCode.BLOB_MISSING

    def __init__(self, digest: str) -> None:
        super().__init__(f"the stored content sha256:{digest} is missing", digest=digest)
        self.digest = digest


class BlobCorruptError(DomainError):
    """A blob's bytes no longer hash to its digest: nothing past the last good chunk is sent."""

    code = ErrorCode.BLOB_CORRUPT

    def __init__(self, digest: str, offset: int) -> None:
        super().__init__(
            f"the stored content sha256:{digest} is corrupt (at byte {offset})",
            digest=digest,
            offset=offset,
        )
        self.digest = digest
        self.offset = offset
