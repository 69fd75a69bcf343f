"""The data converter every Lodestone client, worker and test environment uses: Temporal's
default, except that JSON keeps an object's keys in the order they were written. The SDK's
own JSON converter sorts them, and a state machine sees the difference: `States.JsonToString`
of a Task's answer, or of a value that crossed an activity, must read as the service wrote it
(Step Functions keeps the order)."""

import dataclasses
import json
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)


class OrderedJSONPayloadConverter(JSONPlainPayloadConverter):
    """json/plain, keys in their order (compatible: any json/plain reader decodes it)."""

    def to_payload(self, value: Any) -> Payload | None:
        data = json.dumps(value, cls=self._encoder, separators=(",", ":"))
        return Payload(metadata={"encoding": self.encoding.encode()}, data=data.encode())


class OrderedPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                OrderedJSONPayloadConverter() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = dataclasses.replace(DataConverter.default, payload_converter_class=OrderedPayloadConverter)
