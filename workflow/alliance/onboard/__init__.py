"""`alliance init`: inspect a foreign export and write a starter config.

`inspection.inspect_export` reads the export (`layout`, `profile`, `item_groups`, `guess`,
`codings` and `vocabulary` do the looking); `starter.starter_config` writes the YAML; `cli` is
the command.
"""
