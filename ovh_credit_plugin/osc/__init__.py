"""``openstack rating credit ...`` commands (python-openstackclient plugin).

Needs the ``client`` extra (python-openstackclient, python-cloudkittyclient).
Nothing here is imported by the rest of the plugin.
"""
