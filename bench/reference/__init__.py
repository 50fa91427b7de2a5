"""The yardstick bench/intake.py measures intake against, on the same gunicorn and PostgreSQL.

One plain Django view that stores the request body with one INSERT and publishes one Celery
message once it is committed: the least any intake endpoint on this stack does. The product
never mounts it; gunicorn serves it with `bench.reference.settings`.
"""
