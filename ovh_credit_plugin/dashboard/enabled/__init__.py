"""Horizon's enabled files: copy them into ``openstack_dashboard/local/enabled/``.

Horizon merges the groups of one dashboard by slug: when cloudkitty-dashboard is
enabled too, its own "Rating" group and ours are the same group, and the panel
appears beside CloudKitty's.
"""
