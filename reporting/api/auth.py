"""Who may call the reporting API (staff with the dashboard permission) and the returns API
(a buyer, through one of its keys)."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import BasePermission

from buyers.models import Buyer, BuyerApiKey
from config.api_keys import BearerKeyAuthentication, BearerScheme
from reporting.services import buyer_api_key_authenticate

DASHBOARD_PERMISSION = "reporting.view_dashboard"


class StaffTokenAuthentication(TokenAuthentication):
    """`Authorization: Bearer <token>` with a staff user's DRF token (`manage.py drf_create_token`).

    A partner's source key is not a token: it is refused (401), never taken for a person.
    """

    keyword = "Bearer"


class CanViewReports(BasePermission):
    """An active staff user with the dashboard permission (the Sales, Ops and Admin groups)."""

    message = "Reports are for staff with the dashboard permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user is not None
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            and user.has_perm(DASHBOARD_PERMISSION)
        )


@dataclass(frozen=True)
class BuyerPrincipal:
    """The caller of the returns API: a buyer, through one of its keys."""

    buyer: Buyer
    api_key: BuyerApiKey
    is_authenticated: bool = True
    is_active: bool = True

    @property
    def pk(self) -> int:
        return self.buyer.pk


class BuyerKeyAuthentication(BearerKeyAuthentication):
    """`Authorization: Bearer lbk_…` with a live key of a buyer."""

    what = "buyer API key"

    def find_key(self, raw_key: str) -> BuyerApiKey | None:
        return buyer_api_key_authenticate(raw_key=raw_key)

    def principal_for(self, api_key: BuyerApiKey) -> BuyerPrincipal:
        return BuyerPrincipal(buyer=api_key.buyer, api_key=api_key)


class IsActiveBuyer(BasePermission):
    message = "This buyer is inactive."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, BuyerPrincipal) and request.user.buyer.active


class StaffTokenScheme(BearerScheme):
    target_class = "reporting.api.auth.StaffTokenAuthentication"
    name = "StaffToken"
    description = "A staff user's API token (manage.py drf_create_token <username>)."


class BuyerKeyScheme(BearerScheme):
    target_class = "reporting.api.auth.BuyerKeyAuthentication"
    name = "BuyerKey"
    description = "A buyer API key (lbk_…), minted in the admin or by mint_buyer_key."
