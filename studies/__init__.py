"""Built-in study specs (TOML files shipped with the package); list them with `dse specs`."""
