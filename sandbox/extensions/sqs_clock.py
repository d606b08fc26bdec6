"""SQS: a message's visibility and delay read the clock cheaply.

moto asks every message of a queue whether it is visible and not delayed, many times per
ReceiveMessage, and each answer builds two datetimes; a queue of 1,000 messages then takes
minutes to drain, which AWS does not. The same comparison against `time.time()` (the same
milliseconds since the epoch) keeps moto's behaviour and drops the cost.
"""

from __future__ import annotations

import time
from typing import Any

from moto.sqs.models import Message

from sandbox.extensions.patching import patch


def install() -> None:
    def visible(self: Message) -> bool:
        return time.time() * 1000 > self.visible_at

    def delayed(self: Message) -> bool:
        return time.time() * 1000 < self.delayed_until

    def make(getter: Any) -> Any:
        return lambda _original: property(getter)

    patch(Message, "visible", make(visible))
    patch(Message, "delayed", make(delayed))
