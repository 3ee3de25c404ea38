"""`alliance init`: inspect a foreign export and write a starter config; `alliance validate`'s
checks of a config against its data.

`inspection.inspect_export` reads the export (`layout` and `numbering` find the session number
in wide column names, `profile`, `item_groups`, `guess`, `content`, `codings` and `vocabulary`
do the looking); `starter.starter_config` writes the YAML; `cli` is the command. `todos` finds
the TODOs init leaves and `preflight` is what `alliance validate` reports.
"""
