"""The store on DynamoDB: several replicas share one table.

Single-table design. Every item has a partition key `pk` and a sort key `sk`; the record
itself is the map attribute `doc` (the pydantic model as JSON types). Collections that are
listed live in one partition each and are read with a strongly consistent Query:

| record          | pk                       | sk                         | expiry (`expires`, TTL) |
|-----------------|--------------------------|----------------------------|-------------------------|
| counter         | `counter#NAME`           | `-`                        | never                   |
| audit record    | `audit`                  | `AT_UTC#SEQ` (time order)  | never                   |
| job             | `job`                    | id, zero-padded            | never                   |
| lock            | `lock`                   | `SERVICE/ENV`              | lease end + 1 day       |
| approval        | `request#ID`             | `-`                        | request expiry + 30 days|
| pending marker  | `pending-request`        | id, zero-padded            | request expiry + 30 days|
| deploy          | `deploy#SERVICE/ENV`     | id, zero-padded            | never                   |
| delivery seen   | `seen#KEY`               | `-`                        | its expiry              |
| small value     | `value#KEY`              | `-`                        | never                   |
| db session      | `dbsession`              | id, zero-padded            | session end + 1 day     |

Guarded writes are single conditional requests, so each costs one round trip:
locks and delivery ids compare `until` (the lease end in epoch microseconds) with the
current time, approvals and job claims compare fields of `doc`. DynamoDB deletes items
whose `expires` (epoch seconds) has passed, but only eventually, so no read relies on it.
A guarded write that botocore retries after a lost answer recognises itself: it carries a
`writer` mark, and the item returned with a failed condition says whose write it was.

Running jobs are also in the sparse index `running` (`running` = "job", sorted by `sk`):
a job leaves it by being written without that attribute when it ends. That index is
eventually consistent, which suits its reader: a replica looking for jobs to take over
claims each one with a conditional write anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from pydantic import BaseModel, TypeAdapter

from adapters.aws.clients import tls_verify
from bot.model import (
    ApprovalRequest,
    AuditRecord,
    DbSessionRecord,
    DeployRecord,
    JobRecord,
    JobStatus,
    LockRecord,
    RequestStatus,
)
from bot.ports.store import EventClaim

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

M = TypeVar("M", bound=BaseModel)

ClientHook = Callable[[Any], None]

RUNNING_INDEX = "running"
PENDING_REQUESTS = "pending-request"
NO_SORT = "-"

# How long records outlive their expiry before DynamoDB may delete them: an expired lock or
# request is still shown ("expired at ...") for a while.
LOCK_RETENTION = timedelta(days=1)
REQUEST_RETENTION = timedelta(days=30)
DB_SESSION_RETENTION = timedelta(days=1)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Keys above this size are hashed: DynamoDB allows 2048 bytes for pk, 1024 for sk.
_MAX_KEY_BYTES = 512
# BatchGetItem takes up to 100 keys; what DynamoDB leaves unprocessed is asked again after
# these pauses (as its documentation advises, backing off).
BATCH_GET_LIMIT = 100
UNPROCESSED_RETRIES = (0.05, 0.2, 1.0)


def table_definition(table: str) -> dict[str, Any]:
    """The CreateTable request; deploy/dynamodb-table.yaml declares the same table."""
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "running", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": RUNNING_INDEX,
                "KeySchema": [
                    {"AttributeName": "running", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


TTL_ATTRIBUTE = "expires"


class StoreTableMissing(RuntimeError):
    """The table does not exist and this replica was told not to create it."""


# --- attribute values ---------------------------------------------------------------------


def to_attribute(value: Any) -> dict[str, Any]:
    """A JSON value (as pydantic's `model_dump(mode="json")` gives) as a DynamoDB value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"DynamoDB cannot store the number {value}")
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    (kind, value), *_ = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        text = str(value)
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if kind == "L":
        return [from_attribute(v) for v in value]
    if kind == "SS":
        return list(value)
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def _micros(at: datetime) -> int:
    """Epoch microseconds, exact (no float rounding), for lease comparisons."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH) // timedelta(microseconds=1)


def _ttl(at: datetime, retention: timedelta = timedelta(0)) -> int:
    return math.ceil(_micros(at + retention) / 1_000_000)


def _number(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _string(value: str) -> dict[str, str]:
    return {"S": value}


def _padded(number: int) -> str:
    return f"{number:012d}"


def _safe_key(key: str) -> str:
    if len(key.encode()) <= _MAX_KEY_BYTES:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _utc_text(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _doc(record: BaseModel) -> dict[str, Any]:
    return to_attribute(record.model_dump(mode="json"))


_DATETIME = TypeAdapter(datetime)


def _json_datetime(value: datetime) -> dict[str, Any]:
    """A datetime field in the same JSON form pydantic writes into `doc`."""
    return to_attribute(_DATETIME.dump_python(value, mode="json"))


def _conditional_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _writer() -> dict[str, str]:
    """A mark for one write, so that the write can recognise itself (see `_written_by`)."""
    return _string(secrets.token_hex(8))


def _written_by(error: ClientError, writer: dict[str, str]) -> bool:
    """Whether a failed condition failed on this very write, made by an earlier attempt.

    botocore retries a request whose answer was lost (a timeout, a dropped connection); if
    DynamoDB had applied the first attempt, the retry finds the condition false. The item
    that made it fail (ReturnValuesOnConditionCheckFailure) tells the two cases apart.
    """
    held = error.response.get("Item")
    return isinstance(held, Mapping) and held.get("writer") == writer


class DynamoStore:
    def __init__(
        self, client: DynamoDBClient, table: str, stack: contextlib.AsyncExitStack
    ) -> None:
        self._client = client
        self._table = table
        self._stack = stack
        # Orders audit records written in the same microsecond by this replica.
        self._audit_sequence = itertools.count()
        self._audit_suffix = secrets.token_hex(3)

    @property
    def client(self) -> DynamoDBClient:
        return self._client

    @property
    def table(self) -> str:
        return self._table

    @classmethod
    async def open(
        cls,
        table: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        create: bool = True,
        retry_mode: str = "standard",
        max_attempts: int = 4,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        client_hook: ClientHook | None = None,
    ) -> DynamoStore:
        """Connect, and create the table (with TTL on `expires`) when it is missing and
        `create` is true; in production the table comes from deploy/dynamodb-table.yaml."""
        config = AioConfig(
            retries={"mode": retry_mode, "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=50,
            tcp_keepalive=True,
        )
        stack = contextlib.AsyncExitStack()
        try:
            creator = get_session().create_client(
                "dynamodb",
                region_name=region,
                endpoint_url=endpoint_url,
                verify=tls_verify(endpoint_url),
                config=config,
            )
            client = await stack.enter_async_context(creator)
            if client_hook is not None:
                client_hook(client)
            store = cls(client, table, stack)
            await store._ensure_table(create)
        except BaseException:
            await stack.aclose()
            raise
        return store

    async def _ensure_table(self, create: bool) -> None:
        client = self._client
        try:
            await client.describe_table(TableName=self._table)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        if not create:
            raise StoreTableMissing(
                f"DynamoDB table {self._table} does not exist: "
                "create it from deploy/dynamodb-table.yaml"
            )
        try:
            await client.create_table(**table_definition(self._table))
        except ClientError as error:
            # Another replica is creating it at the same moment.
            if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
        waiter = client.get_waiter("table_exists")
        await waiter.wait(TableName=self._table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        try:
            await client.update_time_to_live(
                TableName=self._table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        except ClientError as error:
            # "TimeToLive is already enabled": the other replica got there first.
            if error.response.get("Error", {}).get("Code") != "ValidationException":
                raise

    async def ping(self) -> None:
        await self._client.get_item(
            TableName=self._table,
            Key={"pk": _string("ping"), "sk": _string(NO_SORT)},
            ProjectionExpression="pk",
        )

    async def close(self) -> None:
        await self._stack.aclose()

    # --- primitives ---------------------------------------------------------------------

    def _key(self, pk: str, sk: str = NO_SORT) -> dict[str, Any]:
        return {"pk": _string(pk), "sk": _string(sk)}

    async def _put(self, pk: str, sk: str, record: BaseModel, **extra: Any) -> None:
        item = {**self._key(pk, sk), "doc": _doc(record), **extra}
        await self._client.put_item(TableName=self._table, Item=item)

    async def _get(self, model: type[M], pk: str, sk: str = NO_SORT) -> M | None:
        response = await self._client.get_item(
            TableName=self._table, Key=self._key(pk, sk), ConsistentRead=True
        )
        item = response.get("Item")
        return _load(model, item) if item else None

    async def _query(
        self, model: type[M], pk: str, *, newest_first: bool, limit: int | None = None
    ) -> list[M]:
        """The records of one partition in sort-key order, following pages up to `limit`."""
        records: list[M] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _string(pk)},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        return await self._collect(model, request, records, limit)

    async def _collect(
        self, model: type[M], request: dict[str, Any], records: list[M], limit: int | None
    ) -> list[M]:
        while True:
            if limit is not None:
                request["Limit"] = limit - len(records)
            response = await self._client.query(**request)
            records.extend(_load(model, item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and len(records) >= limit):
                return records
            request["ExclusiveStartKey"] = last

    # --- counters -----------------------------------------------------------------------

    async def next_id(self, counter: str) -> int:
        response = await self._client.update_item(
            TableName=self._table,
            Key=self._key(f"counter#{counter}"),
            UpdateExpression="ADD #value :one",
            ExpressionAttributeNames={"#value": "value"},
            ExpressionAttributeValues={":one": _number(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["value"]["N"])

    # --- audit --------------------------------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> None:
        order = f"{_utc_text(record.at)}#{next(self._audit_sequence):010d}{self._audit_suffix}"
        await self._put("audit", order, record)

    async def list_audit(self, limit: int = 20) -> list[AuditRecord]:
        if limit <= 0:
            return []
        return await self._query(AuditRecord, "audit", newest_first=True, limit=limit)

    # --- jobs ---------------------------------------------------------------------------

    def _job_item(self, job: JobRecord) -> dict[str, Any]:
        item = {**self._key("job", _padded(job.id)), "doc": _doc(job)}
        if job.lease_expires is not None:
            item["until"] = _number(_micros(job.lease_expires))
        if job.status is JobStatus.RUNNING:
            item["running"] = _string("job")
        return item

    async def put_job(self, job: JobRecord) -> None:
        await self._client.put_item(TableName=self._table, Item=self._job_item(job))

    async def update_job(self, job: JobRecord) -> bool:
        # A retry of an applied write finds the same runner, so it succeeds again.
        try:
            await self._client.put_item(
                TableName=self._table,
                Item=self._job_item(job),
                ConditionExpression="doc.runner = :runner",
                ExpressionAttributeValues={":runner": _string(job.runner)},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    async def get_job(self, job_id: int) -> JobRecord | None:
        return await self._get(JobRecord, "job", _padded(job_id))

    async def list_jobs(self, limit: int = 20, running_only: bool = False) -> list[JobRecord]:
        if limit <= 0:
            return []
        if not running_only:
            return await self._query(JobRecord, "job", newest_first=True, limit=limit)
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": RUNNING_INDEX,
            "KeyConditionExpression": "#running = :job",
            "ExpressionAttributeNames": {"#running": "running"},
            "ExpressionAttributeValues": {":job": _string("job")},
            "ScanIndexForward": False,
        }
        jobs = await self._collect(JobRecord, request, [], limit)
        # The index lags the table a little: a job that just ended may still be listed.
        return [job for job in jobs if job.status is JobStatus.RUNNING]

    async def claim_job(
        self, job_id: int, runner: str, lease_expires: datetime, now: datetime
    ) -> bool:
        try:
            await self._client.update_item(
                TableName=self._table,
                Key=self._key("job", _padded(job_id)),
                UpdateExpression="SET doc.runner = :runner, doc.lease_expires = :lease, "
                "#until = :until",
                ConditionExpression="attribute_exists(pk) AND doc.#status = :running AND "
                "(doc.runner = :runner OR attribute_not_exists(#until) OR #until <= :now)",
                ExpressionAttributeNames={"#until": "until", "#status": "status"},
                ExpressionAttributeValues={
                    ":runner": _string(runner),
                    ":lease": _json_datetime(lease_expires),
                    ":until": _number(_micros(lease_expires)),
                    ":running": _string(JobStatus.RUNNING.value),
                    ":now": _number(_micros(now)),
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    # --- locks --------------------------------------------------------------------------

    async def acquire_lock(self, lock: LockRecord, now: datetime) -> LockRecord:
        item = {
            **self._key("lock", lock.key),
            "doc": _doc(lock),
            "until": _number(_micros(lock.expires_at)),
            TTL_ATTRIBUTE: _number(_ttl(lock.expires_at, LOCK_RETENTION)),
        }
        # The holder comes back with a failed condition in the same round trip; only an
        # emulator without ReturnValuesOnConditionCheckFailure needs the read below.
        while True:
            try:
                await self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk) OR #until <= :now",
                    ExpressionAttributeNames={"#until": "until"},
                    ExpressionAttributeValues={":now": _number(_micros(now))},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if not _conditional_failed(error):
                    raise
                held = error.response.get("Item")
                if isinstance(held, Mapping) and held:
                    return _load(LockRecord, held)
                holder = await self.get_lock(lock.key)
                if holder is not None:
                    return holder
                continue  # released in between: try again
            return lock

    async def release_lock(self, key: str, token: str) -> bool:
        try:
            await self._client.delete_item(
                TableName=self._table,
                Key=self._key("lock", key),
                ConditionExpression="doc.#token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={":token": _string(token)},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    async def relock(
        self, key: str, token: str, reason: str, expires_at: datetime, now: datetime
    ) -> LockRecord | None:
        writer = _writer()
        try:
            response = await self._client.update_item(
                TableName=self._table,
                Key=self._key("lock", key),
                UpdateExpression="SET doc.reason = :reason, doc.expires_at = :expires_at, "
                "#until = :until, #expires = :ttl, writer = :writer",
                ConditionExpression="doc.#token = :token AND #until > :now",
                ExpressionAttributeNames={
                    "#token": "token",
                    "#until": "until",
                    "#expires": TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={
                    ":token": _string(token),
                    ":reason": _string(reason),
                    ":expires_at": _json_datetime(expires_at),
                    ":until": _number(_micros(expires_at)),
                    ":ttl": _number(_ttl(expires_at, LOCK_RETENTION)),
                    ":now": _number(_micros(now)),
                    ":writer": writer,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _conditional_failed(error) and _written_by(error, writer):
                return await self.get_lock(key)
            if _conditional_failed(error):
                return None
            raise
        return _load(LockRecord, response["Attributes"])

    async def renew_lock(self, key: str, token: str, expires_at: datetime) -> bool:
        try:
            await self._client.update_item(
                TableName=self._table,
                Key=self._key("lock", key),
                UpdateExpression="SET doc.expires_at = :expires_at, #until = :until, "
                "#expires = :ttl",
                ConditionExpression="doc.#token = :token",
                ExpressionAttributeNames={
                    "#token": "token",
                    "#until": "until",
                    "#expires": TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={
                    ":token": _string(token),
                    ":expires_at": _json_datetime(expires_at),
                    ":until": _number(_micros(expires_at)),
                    ":ttl": _number(_ttl(expires_at, LOCK_RETENTION)),
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    async def get_lock(self, key: str) -> LockRecord | None:
        return await self._get(LockRecord, "lock", key)

    async def list_locks(self) -> list[LockRecord]:
        return await self._query(LockRecord, "lock", newest_first=False)

    # --- approvals and confirmations ----------------------------------------------------

    async def put_request(self, request: ApprovalRequest) -> None:
        await self._put(
            f"request#{request.id}",
            NO_SORT,
            request,
            **{TTL_ATTRIBUTE: _number(_ttl(request.expires_at, REQUEST_RETENTION))},
        )
        if request.status is RequestStatus.PENDING:
            # A marker in one partition, so that pending requests can be listed; the
            # request itself stays the truth (a marker left by a lost delete is ignored).
            await self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(PENDING_REQUESTS, _padded(request.id)),
                    TTL_ATTRIBUTE: _number(_ttl(request.expires_at, REQUEST_RETENTION)),
                },
            )

    async def get_request(self, request_id: int) -> ApprovalRequest | None:
        return await self._get(ApprovalRequest, f"request#{request_id}")

    async def list_pending_requests(self) -> list[ApprovalRequest]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _string(PENDING_REQUESTS)},
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        ids: list[int] = []
        while True:
            response = await self._client.query(**request)
            ids.extend(int(item["sk"]["S"]) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        pending: list[ApprovalRequest] = []
        for request_id in ids:
            found = await self.get_request(request_id)
            if found is not None and found.status is RequestStatus.PENDING:
                pending.append(found)
            else:
                await self._forget_pending(request_id)
        return pending

    async def _forget_pending(self, request_id: int) -> None:
        await self._client.delete_item(
            TableName=self._table, Key=self._key(PENDING_REQUESTS, _padded(request_id))
        )

    async def decide_request(
        self, request_id: int, status: RequestStatus, by: str, at: datetime
    ) -> bool:
        writer = _writer()
        try:
            await self._client.update_item(
                TableName=self._table,
                Key=self._key(f"request#{request_id}"),
                UpdateExpression="SET doc.#status = :status, doc.decided_by = :by, "
                "doc.decided_at = :at, writer = :writer",
                ConditionExpression="attribute_exists(pk) AND doc.#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": _string(status.value),
                    ":by": _string(by),
                    ":at": _json_datetime(at),
                    ":pending": _string(RequestStatus.PENDING.value),
                    ":writer": writer,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return _written_by(error, writer)
            raise
        with contextlib.suppress(ClientError):
            await self._forget_pending(request_id)
        return True

    # --- deploy history -----------------------------------------------------------------

    async def put_deploy(self, record: DeployRecord) -> None:
        await self._put(f"deploy#{record.service}/{record.env}", _padded(record.id), record)

    async def list_deploys(self, service: str, env: str, limit: int = 20) -> list[DeployRecord]:
        if limit <= 0:
            return []
        return await self._query(
            DeployRecord, f"deploy#{service}/{env}", newest_first=True, limit=limit
        )

    # --- deliveries seen ----------------------------------------------------------------

    async def first_seen(self, key: str, expires_at: datetime) -> bool:
        held = await self._put_unless_held(
            f"seen#{_safe_key(key)}", expires_at, datetime.now(UTC), {}
        )
        return held is None

    async def _put_unless_held(
        self, pk: str, until: datetime, now: datetime, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Put the item `pk` (with `fields`) held until `until`, unless one held past `now`
        is there: None when written (by this call, or by an earlier attempt of it whose
        answer was lost), else the item that holds it."""
        writer = _writer()
        try:
            await self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(pk),
                    **fields,
                    "until": _number(_micros(until)),
                    "writer": writer,
                    TTL_ATTRIBUTE: _number(_ttl(until)),
                },
                ConditionExpression="attribute_not_exists(pk) OR #until <= :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":now": _number(_micros(now))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            if _written_by(error, writer):
                return None
            held = error.response.get("Item")
            return dict(held) if isinstance(held, Mapping) else {}
        return None

    # --- AWS events: claim (a lease), then posted ----------------------------------------

    async def claim_event(
        self, event_id: str, token: str, lease_until: datetime, now: datetime
    ) -> EventClaim:
        held = await self._put_unless_held(
            f"event#{_safe_key(event_id)}",
            lease_until,
            now,
            {"state": _string("claimed"), "token": _string(token)},
        )
        if held is None:
            return EventClaim.CLAIMED
        state = held.get("state", {}).get("S")
        return EventClaim.POSTED if state == "posted" else EventClaim.HELD

    async def event_posted(self, event_id: str, remember_until: datetime) -> None:
        await self._client.update_item(
            TableName=self._table,
            Key=self._key(f"event#{_safe_key(event_id)}"),
            UpdateExpression="SET #state = :posted, #until = :until, #ttl = :ttl",
            ExpressionAttributeNames={"#state": "state", "#until": "until", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":posted": _string("posted"),
                ":until": _number(_micros(remember_until)),
                ":ttl": _number(_ttl(remember_until)),
            },
        )

    async def release_event(self, event_id: str, token: str, now: datetime) -> None:
        try:
            await self._client.update_item(
                TableName=self._table,
                Key=self._key(f"event#{_safe_key(event_id)}"),
                UpdateExpression="SET #until = :now",
                ConditionExpression="#token = :token AND #state = :claimed",
                ExpressionAttributeNames={"#until": "until", "#token": "token", "#state": "state"},
                ExpressionAttributeValues={
                    ":now": _number(_micros(now)),
                    ":token": _string(token),
                    ":claimed": _string("claimed"),
                },
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            # Taken over by another replica meanwhile, or posted: nothing of ours to end.

    # --- small values -------------------------------------------------------------------

    async def get_value(self, key: str) -> str | None:
        response = await self._client.get_item(
            TableName=self._table, Key=self._key(f"value#{_safe_key(key)}"), ConsistentRead=True
        )
        item = response.get("Item")
        return str(item["value"]["S"]) if item else None

    async def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        by_pk = {f"value#{_safe_key(key)}": key for key in keys}
        pks = list(by_pk)
        for start in range(0, len(pks), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [self._key(pk) for pk in pks[start : start + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            for delay in (*UNPROCESSED_RETRIES, None):
                response = await self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[by_pk[item["pk"]["S"]]] = str(item["value"]["S"])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                if delay is None:
                    raise RuntimeError("DynamoDB left keys of a batch read unprocessed")
                await asyncio.sleep(delay)
        return found

    async def swap_value(self, key: str, expected: str | None, value: str) -> bool:
        writer = _writer()
        try:
            if expected is None:
                await self._client.put_item(
                    TableName=self._table,
                    Item={
                        **self._key(f"value#{_safe_key(key)}"),
                        "value": _string(value),
                        "writer": writer,
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            else:
                await self._client.update_item(
                    TableName=self._table,
                    Key=self._key(f"value#{_safe_key(key)}"),
                    UpdateExpression="SET #value = :value, writer = :writer",
                    ConditionExpression="#value = :expected",
                    ExpressionAttributeNames={"#value": "value"},
                    ExpressionAttributeValues={
                        ":value": _string(value),
                        ":expected": _string(expected),
                        ":writer": writer,
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as error:
            if _conditional_failed(error):
                return _written_by(error, writer)
            raise
        return True

    # --- database sessions --------------------------------------------------------------

    async def put_db_session(self, session: DbSessionRecord) -> None:
        await self._put(
            "dbsession",
            _padded(session.id),
            session,
            **{TTL_ATTRIBUTE: _number(_ttl(session.expires_at, DB_SESSION_RETENTION))},
        )

    async def list_db_sessions(self) -> list[DbSessionRecord]:
        return await self._query(DbSessionRecord, "dbsession", newest_first=False)

    async def delete_db_session(self, session_id: int) -> None:
        await self._client.delete_item(
            TableName=self._table, Key=self._key("dbsession", _padded(session_id))
        )


def _load(model: type[M], item: Mapping[str, Any]) -> M:
    return model.model_validate(from_attribute(item["doc"]))
