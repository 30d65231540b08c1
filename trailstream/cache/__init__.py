"""The only keeper of the SQLite cache: schema, migrations, bookkeeping SQL, derived data, views, audit."""
