"""The plugin's options off CloudKitty's process-wide ``cfg.CONF`` after a test.

Inside CloudKitty the processor registers them there, as it must; the tests after
expect them gone. CloudKitty registers options of its own in a group of the same
name as one of ours (``[api]``), once, when ``cloudkitty.api`` is first imported:
those stay, or CloudKitty's API could no longer be built in this process.
"""

from __future__ import annotations

from collections.abc import Collection

from oslo_config import cfg


def unregister_plugin_opts(conf: cfg.ConfigOpts, *, keep: Collection[str] = ()) -> None:
    """Unregister the plugin's options from ``conf``, but in the groups ``keep`` names.

    A group left empty is removed (oslo.config has no public call for that).
    """
    from ovh_credit_plugin.conf import list_opts

    for group, opts in list_opts():
        if group.name in keep or group.name not in conf:
            continue
        conf.unregister_opts(opts, group=group.name)
        if not conf._groups[group.name]._opts:
            conf._groups.pop(group.name, None)
