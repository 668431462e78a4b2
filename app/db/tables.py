"""Every table's module, imported once so SQLModel.metadata is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.artifacts import models as _artifacts  # noqa: F401
from app.auth import models as _auth  # noqa: F401
from app.events import models as _events  # noqa: F401
from app.registry import models as _registry  # noqa: F401
from app.tracking import logged_model_models as _logged_models  # noqa: F401
from app.tracking import models as _tracking  # noqa: F401

metadata = SQLModel.metadata
