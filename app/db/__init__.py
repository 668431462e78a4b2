from app.db.engine import Database
from app.db.types import UTCDateTime, utcnow

__all__ = ["Database", "UTCDateTime", "utcnow"]
