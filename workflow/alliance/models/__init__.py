"""The model stage: model specs from config, one fit per spec, a fixed output contract."""
