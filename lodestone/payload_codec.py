"""The claim check for Temporal payloads: a payload larger than TEMPORAL_PAYLOAD_OFFLOAD_BYTES
goes to the object store, and Temporal carries a small reference to it instead.

Temporal warns at 256 KB a payload and fails a workflow task past 2 MB, while a state
machine's Task may answer megabytes. Every client Lodestone builds (API, worker, CLI,
replay) has this codec, so workflows and activities see the full values and never the
reference: codecs run outside the workflow sandbox, on the payloads as they cross the wire.

The stored object is the whole payload (metadata and data, serialized deterministically),
under a key made of its SHA-256: `payloads/sha256/<2 hex>/<64 hex>`. Storing the same payload
twice (a retried activity, two jobs with one result) writes it once. The key is tenant-neutral:
a codec sees bytes, not whose they are; no tenant can name a key, because only this codec
writes references, and a tenant's own data always arrives as a JSON payload.

The reference's data is JSON, so the Web UI shows it as it is:
`{"offloaded": "payloads/sha256/…", "bytes": N, "sha256": "…", "encoding": "json/plain"}`
(`encoding` is the original payload's). Its own encoding, `json/lodestone-offloaded`, is one
no SDK knows, so a client without this codec fails loudly instead of reading the reference as
the value. Decoding fetches the object and checks its size and digest."""

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from lodestone.settings import Settings
from lodestone.storage import ObjectNotFound, ObjectStore, make_store
from lodestone.temporal_converter import DATA_CONVERTER

ENCODING = b"json/lodestone-offloaded"
PREFIX = "payloads/sha256/"
CONTENT_TYPE = "application/x-protobuf"


class OffloadedPayloadMissing(LookupError):
    """A reference names an object the store does not hold (swept, or another store)."""


class OffloadedPayloadCorrupt(ValueError):
    """A reference, or the object it names, is not what the codec wrote."""


@dataclass(frozen=True)
class Reference:
    key: str
    size: int
    sha256: str
    encoding: str  # the original payload's

    def payload(self) -> Payload:
        body = {"offloaded": self.key, "bytes": self.size, "sha256": self.sha256, "encoding": self.encoding}
        return Payload(metadata={"encoding": ENCODING}, data=json.dumps(body, separators=(",", ":")).encode())

    @classmethod
    def of(cls, payload: Payload) -> "Reference":
        try:
            body = json.loads(payload.data)
            ref = cls(str(body["offloaded"]), int(body["bytes"]), str(body["sha256"]), str(body.get("encoding", "")))
        except (ValueError, KeyError, TypeError) as e:
            raise OffloadedPayloadCorrupt(f"an offloaded payload's reference is unreadable: {e}") from e
        if ref.key != payload_key(ref.sha256):  # a reference names its own object, nothing else
            raise OffloadedPayloadCorrupt(f"reference key {ref.key!r} does not match its sha256")
        return ref


def payload_key(sha256: str) -> str:
    return f"{PREFIX}{sha256[:2]}/{sha256}"


def is_offloaded(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


class OffloadCodec(PayloadCodec):
    """Payloads of more than `threshold` bytes (0: none) to the store; references back.

    `store` is a store or a factory of one, called at the first offload or fetch (building
    an S3 store asks the bucket, which the API's startup should not wait for)."""

    def __init__(self, store: ObjectStore | Callable[[], ObjectStore], threshold: int) -> None:
        self._store = store if isinstance(store, ObjectStore) else None
        self._make = None if isinstance(store, ObjectStore) else store
        self.threshold = threshold

    async def store(self) -> ObjectStore:
        if self._store is None:
            assert self._make is not None
            self._store = await asyncio.to_thread(self._make)
        return self._store

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(await asyncio.gather(*(self._offload(p) for p in payloads)))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(await asyncio.gather(*(self._restore(p) for p in payloads)))

    async def _offload(self, payload: Payload) -> Payload:
        if not self.threshold or payload.ByteSize() <= self.threshold or is_offloaded(payload):
            return payload
        data = payload.SerializeToString(deterministic=True)
        digest = hashlib.sha256(data).hexdigest()
        key = payload_key(digest)
        store = await self.store()
        try:
            present = await store.size(key) == len(data)
        except ObjectNotFound:
            present = False
        if not present:
            await store.put_bytes(key, data, CONTENT_TYPE)
        return Reference(key, len(data), digest, payload.metadata.get("encoding", b"").decode()).payload()

    async def _restore(self, payload: Payload) -> Payload:
        if not is_offloaded(payload):
            return payload
        ref = Reference.of(payload)
        try:
            data = await (await self.store()).get_bytes(ref.key)
        except ObjectNotFound as e:
            raise OffloadedPayloadMissing(
                f"offloaded payload {ref.key} ({ref.size} bytes) is not in the object store"
            ) from e
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise OffloadedPayloadCorrupt(f"offloaded payload {ref.key} does not match its sha256 or size")
        try:
            return Payload.FromString(data)
        except DecodeError as e:
            raise OffloadedPayloadCorrupt(f"offloaded payload {ref.key} is not a payload: {e}") from e


def data_converter(settings: Settings, store: ObjectStore | None = None) -> DataConverter:
    """Lodestone's converter (JSON keys in their order) with the claim check, on this
    deployment's object store."""
    codec = OffloadCodec(store or (lambda: make_store(settings)), settings.temporal_payload_offload_bytes)
    return replace(DATA_CONVERTER, payload_codec=codec)
