"""The claim-check codec on both object stores: small payloads pass untouched, large ones go
to the store and come back byte for byte, and a reference whose object is gone or altered is
refused with its own error."""

import hashlib
import json
import os
from dataclasses import dataclass

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from lodestone.payload_codec import (
    ENCODING,
    OffloadCodec,
    OffloadedPayloadCorrupt,
    OffloadedPayloadMissing,
    data_converter,
    payload_key,
)
from lodestone.settings import Settings
from lodestone.storage import FilesystemStore, ObjectNotFound, ObjectStore, S3Store

THRESHOLD = 4096


@dataclass
class Answer:
    rows: list[str]
    status: int


@pytest.fixture(scope="module", params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    if request.param == "fs":
        return FilesystemStore(tmp_path_factory.mktemp("objects"))
    return S3Store(
        Settings(
            _env_file=None,
            s3_endpoint=f"http://127.0.0.1:{request.getfixturevalue('moto_port')}",
            s3_access_key="test",
            s3_secret_key="test",
            s3_bucket="lodestone-codec-test",
        )
    )


def _payload(size: int) -> Payload:
    # Random bytes: every test's payload is its own object in the module's store.
    return Payload(metadata={"encoding": b"binary/plain", "note": b"kept"}, data=os.urandom(size))


async def test_a_payload_at_or_under_the_threshold_is_left_as_it_is(store):
    codec = OffloadCodec(store, THRESHOLD)
    small = _payload(100)
    at = Payload(metadata={"encoding": b"binary/plain"})
    at.data = os.urandom(THRESHOLD - (at.ByteSize() + 3))  # 3: the data field's tag and length
    assert at.ByteSize() == THRESHOLD
    encoded = await codec.encode([small, at])
    assert encoded == [small, at]
    assert await codec.decode(encoded) == [small, at]


async def test_a_large_payload_travels_as_a_reference_and_comes_back_byte_exact(store):
    codec = OffloadCodec(store, THRESHOLD)
    big = _payload(300_000)
    (ref,) = await codec.encode([big])
    assert ref.metadata["encoding"] == ENCODING
    assert ref.ByteSize() < 400
    stored = big.SerializeToString(deterministic=True)
    digest = hashlib.sha256(stored).hexdigest()
    assert json.loads(ref.data) == {
        "offloaded": f"payloads/sha256/{digest[:2]}/{digest}",
        "bytes": len(stored),
        "sha256": digest,
        "encoding": "binary/plain",
    }
    assert await store.get_bytes(payload_key(digest)) == stored
    (back,) = await codec.decode([ref])
    assert back.SerializeToString(deterministic=True) == stored
    assert back == big


async def test_only_the_large_ones_of_several_payloads_are_offloaded_in_order(store):
    codec = OffloadCodec(store, THRESHOLD)
    given = [_payload(10), _payload(50_000), _payload(20), _payload(60_000)]
    encoded = await codec.encode(given)
    assert [p.metadata["encoding"] == ENCODING for p in encoded] == [False, True, False, True]
    assert await codec.decode(encoded) == given


async def test_the_same_payload_twice_is_one_object_written_once(store, monkeypatch):
    codec = OffloadCodec(store, THRESHOLD)
    big = _payload(40_000)
    writes: list[str] = []
    put = store.put_bytes

    async def counting(key: str, data: bytes, content_type: str):  # type: ignore[no-untyped-def]
        writes.append(key)
        return await put(key, data, content_type)

    monkeypatch.setattr(store, "put_bytes", counting)
    first, second = await codec.encode([big]), await codec.encode([big])
    assert first == second
    assert len(writes) == 1


async def test_an_altered_object_is_refused(store):
    codec = OffloadCodec(store, THRESHOLD)
    (ref,) = await codec.encode([_payload(30_000)])
    key = json.loads(ref.data)["offloaded"]
    data = bytearray(await store.get_bytes(key))
    data[-1] ^= 0xFF  # same size, one byte different
    await store.put_bytes(key, bytes(data), "application/x-protobuf")
    with pytest.raises(OffloadedPayloadCorrupt, match=key):
        await codec.decode([ref])


async def test_a_reference_to_another_key_than_its_digest_is_refused(store):
    codec = OffloadCodec(store, THRESHOLD)
    (ref,) = await codec.encode([_payload(30_000)])
    body = json.loads(ref.data)
    body["offloaded"] = "00000000-0000-0000-0000-000000000000/jobs/x/report.html"
    ref.data = json.dumps(body).encode()
    with pytest.raises(OffloadedPayloadCorrupt, match="does not match its sha256"):
        await codec.decode([ref])


async def test_a_missing_object_is_a_clear_error_naming_its_key(store):
    codec = OffloadCodec(store, THRESHOLD)
    (ref,) = await codec.encode([_payload(30_000)])
    key = json.loads(ref.data)["offloaded"]
    await store.delete(key)
    with pytest.raises(ObjectNotFound):
        await store.get_bytes(key)
    with pytest.raises(OffloadedPayloadMissing, match=f"offloaded payload {key} .* is not in the object store"):
        await codec.decode([ref])


async def test_the_data_converter_round_trips_a_large_value(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path, temporal_payload_offload_bytes=THRESHOLD)
    converter = data_converter(settings)
    value = Answer(rows=[f"row {i} " + "x" * 90 for i in range(2000)], status=200)
    (payload,) = await converter.encode([value])
    assert payload.metadata["encoding"] == ENCODING
    assert payload.ByteSize() < 400
    # The settings' filesystem store: DATA_DIR/objects
    assert (tmp_path / "objects" / json.loads(payload.data)["offloaded"]).is_file()
    assert await converter.decode([payload], [Answer]) == [value]
    # A client without the codec fails loudly instead of taking the reference for the value.
    with pytest.raises(KeyError, match="Unknown payload encoding json/lodestone-offloaded"):
        await DataConverter.default.decode([payload], [Answer])


async def test_a_threshold_of_zero_offloads_nothing(tmp_path):
    codec = OffloadCodec(FilesystemStore(tmp_path), 0)
    big = _payload(3 * 1024 * 1024)
    assert await codec.encode([big]) == [big]
    assert not (tmp_path / "payloads").exists()


def test_a_threshold_past_temporals_own_limit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="TEMPORAL_PAYLOAD_OFFLOAD_BYTES"):
        Settings(_env_file=None, data_dir=tmp_path, temporal_payload_offload_bytes=3 * 1024 * 1024)
    assert Settings(_env_file=None, data_dir=tmp_path).temporal_payload_offload_bytes == 128 * 1024
