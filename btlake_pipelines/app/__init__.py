"""The application layer: ``Lake``, one object whose methods are btlake's use cases.

Every front end (the CLI, the HTTP API and browser, Dagster's ``defs/``) is glue over it: parse
input, call one method, format or serialise the result. The core packages below it (contract,
bundles, landing, storage, metadata, ingest, query, versions) never import a front end.
"""
