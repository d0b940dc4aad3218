"""The ``ovh-credit`` command line."""
