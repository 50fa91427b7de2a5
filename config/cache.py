"""Django's Redis cache, with one client object per connection pool instead of one per call.

Django builds a new `redis.Redis` for every cache operation, and redis-py fills a dict of some
two hundred response callbacks in each constructor: a third of a millisecond of CPU per
operation, several per intake request (the throttle, the intake cache's token). A client is
thread-safe (it borrows a pooled connection per command), so one per pool serves every thread.
"""

from __future__ import annotations

import threading

import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

# What a cache call raises when Redis cannot be reached or answer in time.
CACHE_DOWN = (redis.RedisError, OSError)


class ReusedRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}
        self._clients_lock = threading.Lock()

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            with self._clients_lock:
                client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusedRedisCacheClient
