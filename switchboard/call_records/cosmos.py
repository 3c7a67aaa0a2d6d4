"""Call records in Cosmos DB (SQL API), one document per call, partitioned by `/callId`.

Auth is the account key when COSMOS_KEY is set, else Entra ID (`DefaultAzureCredential`: the managed
identity in Azure). Entra ID data-plane roles cannot create databases or containers, so with Entra ID
they are expected to exist (the Bicep deployment creates them); with a key they are created on first
use. Either way the first operation sets up the container proxy once, under a lock.

`get` is a single-partition query rather than `read_item`: a few RU more than a point read (a record
is read rarely), no exception for the common "not there" answer, and it works on local test servers
whose point read of a missing id fails with 500 instead of 404. The query names the partition key in
its WHERE clause as well as in the request, because such servers ignore the partition-key header.
"""

from __future__ import annotations

import asyncio
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import CosmosHttpResponseError

from switchboard.call_records.model import CallRecord
from switchboard.call_records.store import RecordStoreError
from switchboard.settings import Settings

PARTITION_KEY_PATH = "/callId"  # infra/bicep/modules/cosmos.bicep declares the same
_GET = "SELECT * FROM c WHERE c.callId = @callId AND c.id = @id"
# TOP, not OFFSET/LIMIT: both work on Cosmos DB, only TOP on the local test server.
_RECENT = "SELECT TOP @limit * FROM c ORDER BY c.startedAt DESC"


def _describe(what: str, exc: AzureError) -> str:
    if isinstance(exc, CosmosHttpResponseError):
        sub = getattr(exc, "sub_status", None)
        return f"call record {what} failed: Cosmos DB answered {exc.status_code}" + (f"/{sub}" if sub else "")
    return f"call record {what} failed: {type(exc).__name__}: {exc.message}"


class CosmosRecordStore:
    def __init__(self, endpoint: str, *, database: str, container: str, key: str | None = None,
                 credential: AsyncTokenCredential | None = None, default_ttl_seconds: int | None = None,
                 create_if_missing: bool | None = None, enable_endpoint_discovery: bool | None = None,
                 connection_verify: bool | str | None = None) -> None:
        """`key` wins over `credential`; with neither, `DefaultAzureCredential` is used (and closed here).

        `create_if_missing` defaults to True with a key and False with Entra ID (see the module doc).
        `enable_endpoint_discovery=False` and `connection_verify` are for local servers: their account
        document advertises https:// locations a plain-HTTP server does not serve.
        """
        self.database_name, self.container_name = database, container
        self.default_ttl = default_ttl_seconds
        self._owned_credential: AsyncTokenCredential | None = None
        auth: str | AsyncTokenCredential
        if key is not None:
            auth = key
        elif credential is not None:
            auth = credential
        else:
            from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - only loaded for Entra ID

            auth = self._owned_credential = DefaultAzureCredential()
        self.create_if_missing = key is not None if create_if_missing is None else create_if_missing
        options: dict[str, Any] = {}
        if enable_endpoint_discovery is not None:
            options["enable_endpoint_discovery"] = enable_endpoint_discovery
        if connection_verify is not None:
            options["connection_verify"] = connection_verify
        self._client = CosmosClient(endpoint, credential=auth, **options)
        self._container: ContainerProxy | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, enable_endpoint_discovery: bool | None = None,
                      connection_verify: bool | str | None = None) -> CosmosRecordStore:
        if settings.cosmos_endpoint is None:
            raise RecordStoreError("COSMOS_ENDPOINT is not set")
        return cls(
            settings.cosmos_endpoint,
            database=settings.cosmos_database,
            container=settings.cosmos_container,
            key=settings.cosmos_key.get_secret_value() if settings.cosmos_key else None,
            default_ttl_seconds=settings.call_record_ttl_days * 86400,
            enable_endpoint_discovery=enable_endpoint_discovery,
            connection_verify=connection_verify,
        )

    async def _ready(self) -> ContainerProxy:
        if self._container is not None:
            return self._container
        async with self._lock:
            if self._container is None:  # a failure leaves it None: the next call tries again
                self._container = await self._open()
        return self._container

    async def _open(self) -> ContainerProxy:
        if not self.create_if_missing:
            return self._client.get_database_client(self.database_name).get_container_client(self.container_name)
        try:
            database = await self._client.create_database_if_not_exists(id=self.database_name)
            # default_ttl enables expiry on the container; each record's own `ttl` then applies.
            # An existing container keeps its settings: this never alters one.
            container = await database.create_container_if_not_exists(
                id=self.container_name, partition_key=PartitionKey(path=PARTITION_KEY_PATH),
                default_ttl=self.default_ttl if self.default_ttl is not None else -1)
        except AzureError as exc:
            raise RecordStoreError(_describe("container setup", exc)) from exc
        if isinstance(container, tuple):  # only with return_properties=True, which is not asked for
            container = container[0]
        assert isinstance(container, ContainerProxy)
        return container

    async def upsert(self, record: CallRecord) -> None:
        container = await self._ready()
        try:
            await container.upsert_item(record.to_document())
        except AzureError as exc:
            raise RecordStoreError(_describe("upsert", exc)) from exc

    async def get(self, call_id: str) -> CallRecord | None:
        container = await self._ready()
        params: list[dict[str, object]] = [{"name": "@callId", "value": call_id}, {"name": "@id", "value": call_id}]
        try:
            async for doc in container.query_items(_GET, parameters=params, partition_key=call_id):
                return CallRecord.from_document(doc)
        except AzureError as exc:
            raise RecordStoreError(_describe("get", exc)) from exc
        return None

    async def recent(self, limit: int = 20) -> list[CallRecord]:
        container = await self._ready()
        params: list[dict[str, object]] = [{"name": "@limit", "value": limit}]
        try:
            return [CallRecord.from_document(doc) async for doc in container.query_items(_RECENT, parameters=params)]
        except AzureError as exc:
            raise RecordStoreError(_describe("recent", exc)) from exc

    async def close(self) -> None:
        await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()
