"""The one seam for every call leaving the platform: buyers' pings and posts, sources'
postbacks, Slack messages and e-mail.

`http` is the client (aiohttp, behind the address guard of `guard`), `email` the mail backend's
door, and `rules` what both return (an Outcome), which failures are worth another try, and the
backoff every retrying loop waits by. The records of attempts stay with their owners (routing's
Attempt, leads' Postback, the notification and team notification rows). This package imports no
app of the project: every app may use it.
"""
