"""What AWS DMS is, independent of any client or emulator.

``status``: the status vocabulary (task, table, connection statuses; stop reasons; start types).
``table_mappings``: the table-mapping document's rules, validation and wildcards.

Both the flow and localdms import from here, so the two agree on what DMS says.
"""
