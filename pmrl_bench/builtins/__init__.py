"""Built-in components. Each subpackage is a plugin registered through the public hooks,
exactly as a third-party package would be (see ``pmrl_bench.plugins.DEFAULT_PLUGINS``)."""
