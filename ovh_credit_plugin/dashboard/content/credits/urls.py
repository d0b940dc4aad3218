from __future__ import annotations

from django.urls import re_path

from ovh_credit_plugin.dashboard.content.credits import views

urlpatterns = [
    re_path(r"^$", views.IndexView.as_view(), name="index"),
    re_path(r"^add_credit/$", views.AddCreditView.as_view(), name="add_credit"),
    re_path(r"^add_voucher/$", views.AddVoucherView.as_view(), name="add_voucher"),
    re_path(r"^orders/(?P<order_id>[^/]+)/$", views.OrderView.as_view(), name="order"),
    re_path(r"^credits/(?P<credit_id>[0-9]+)/void/$", views.VoidView.as_view(), name="void"),
]
