"""The per-sample score cache: variants and their transforms, cache keys, building them (training and
scoring under claims), atomic writes, transfer between caches."""
