"""Names for the constraints and indexes the models declare without one, so a migration
can refer to them by a name known in advance on every database.

The names are the ones PostgreSQL gives unnamed constraints itself (`<table>_pkey`,
`<table>_<columns>_key`, `<table>_<columns>_fkey`), which the first migrations left to
it: an existing PostgreSQL database already has them, and no migration renames
anything. SQLite keeps no name for a constraint declared without one, so constraints
made before this convention stay unnamed there; a batch migration that drops one passes
`naming_convention=NAMING_CONVENTION` to `batch_alter_table` to find it by this name.
Indexes keep SQLAlchemy's default name; most are named explicitly anyway.
"""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}
