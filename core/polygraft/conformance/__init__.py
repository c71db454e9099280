"""The conformance kit behind :mod:`polygraft.testing`: checks that a plugin's components honour polygraft's
contracts, with messages that say what to fix. Import from :mod:`polygraft.testing` in tests."""
