"""What AWS DMS is, independent of any client or emulator.

- ``status``: the status vocabulary (task, table, connection statuses; stop reasons; start
  types); ``lifecycle``: which statuses allow which operation, and DMS's failure text;
- ``serverless``: DMS Serverless's statuses and capacities, and how they map to a task's;
- ``events``: the DMS events (ids, categories, messages) of instances and tasks;
- ``table_mappings``: the table-mapping document's rules, validation and wildcards;
- ``endpoint_settings``: how S3Settings and ExtraConnectionAttributes merge;
- ``s3_layout``: where and how DMS writes to S3 (keys, file names, delimiters);
- ``lob``: LOB types and the sizes DMS measures them by; ``source_types``: how DMS treats the
  PostgreSQL types (what it does not migrate, or migrates partly);
- ``assessments``: the premigration assessments that apply to PostgreSQL → S3.

Both the flow and localdms import from here, so the two agree on what DMS says.
"""
