from sqlmodel import SQLModel

from app.db.engine import Database
from app.db.naming import NAMING_CONVENTION
from app.db.types import UTCDateTime, utcnow

# Names are given as each constraint joins its table, so this must be set before any
# table class is defined: every models module imports app.db first (for its column types).
SQLModel.metadata.naming_convention = NAMING_CONVENTION

__all__ = ["Database", "UTCDateTime", "utcnow"]
