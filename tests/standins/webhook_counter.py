"""The fault suite's webhook receiver: devstack.receiver's, counting accepted deliveries
per webhook-id and the 503s it answered while `unavailable` was set."""

from collections import Counter

from devstack.receiver import WebhookReceiver


class CountingWebhookReceiver(WebhookReceiver):
    @property
    def refused(self) -> int:
        with self._lock:
            return sum(1 for r in self.received if r.status == self.fail_status)

    def counts(self) -> Counter[str]:
        return Counter(r.webhook_id for r in self.successes())
