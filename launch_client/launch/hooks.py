"""Post-inference hooks an endpoint can run."""

from __future__ import annotations

from enum import Enum


class PostInferenceHooks(str, Enum):
    """`callback` POSTs each async task's result to the endpoint's (or the request's) callback URL."""

    CALLBACK = "callback"
