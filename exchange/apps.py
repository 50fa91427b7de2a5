from __future__ import annotations

from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from exchange.api.views import ping_example_answers
        from exchange.services import PING_POSTS, ping_held_bids
        from leads.instructions import ping_answers_register
        from leads.services import ping_posts_register
        from routing.engine.held import held_bids_register

        ping_posts_register(PING_POSTS)
        held_bids_register(ping_held_bids)
        ping_answers_register(ping_example_answers)
