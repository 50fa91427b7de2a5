"""Who may call the reporting API (staff with the dashboard permission, by session or staff
token) and the returns API (a buyer, through one of its keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from buyers.models import Buyer, BuyerApiKey
from config.api_keys import BearerKeyAuthentication, BearerScheme, KeyPrincipal
from reporting.models import StaffToken
from reporting.services import buyer_api_key_authenticate, staff_token_authenticate

DASHBOARD_PERMISSION = "reporting.view_dashboard"


class StaffTokenAuthentication(BearerKeyAuthentication):
    """`Authorization: Bearer lst_…` with a live staff token: the request acts as its user.

    A partner's source key or a buyer's key is not a token: it is refused (401), never taken for
    a person. A token whose user was deactivated is refused too.
    """

    what = "staff API token"

    def find_key(self, raw_key: str) -> StaffToken | None:
        return staff_token_authenticate(raw_token=raw_key)

    def principal_for(self, api_key: StaffToken) -> Any:
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("The staff API token's user is inactive.")
        return api_key.user


class TokenScopeAllows(BasePermission):
    """A request made with a read token only reads; sessions and read-write tokens may change
    what the user's own permissions let them change."""

    message = "This token may only read: its scope is read."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, StaffToken) or request.method in SAFE_METHODS:
            return True
        return token.may_write


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
class BuyerPrincipal(KeyPrincipal):
    """The caller of the returns API: a buyer, through one of its keys."""

    buyer: Buyer
    api_key: BuyerApiKey

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
    description = (
        "A staff user's API token (lst_…), minted in the admin under Staff API tokens or by "
        "manage.py mint_staff_token; it acts with its user's permissions, within its scope."
    )


class BuyerKeyScheme(BearerScheme):
    target_class = "reporting.api.auth.BuyerKeyAuthentication"
    name = "BuyerKey"
    description = "A buyer API key (lbk_…), minted in the admin or by mint_buyer_key."
