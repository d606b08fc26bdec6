"""RDS: ModifyDBInstance DBInstanceClass with and without ApplyImmediately.

moto applies a new instance class at once whatever ApplyImmediately says. On AWS a
deferred change waits in `PendingModifiedValues` for the maintenance window while the
instance stays `available`; an immediate one puts the instance in `modifying` until the
new class is in place.
"""

from __future__ import annotations

from typing import Any

from moto.rds.models import DBInstance, RDSBackend
from moto.rds.responses import RDSResponse

from sandbox.extensions import model_state
from sandbox.extensions.patching import patch
from sandbox.extensions.runtime import Runtime


def _pending(database: DBInstance) -> dict[str, Any]:
    pending: dict[str, Any] | None = model_state.api_field(database, "pending_modified_values")
    if pending is None:
        pending = {}
        model_state.set_api_field(database, "pending_modified_values", pending)
    return pending


def _settle(runtime: Runtime, backend: RDSBackend) -> None:
    now = runtime.now()
    for database in list(backend.databases.values()):
        change: tuple[float, str] | None = model_state.get(database, "modifying", None)
        if change is None or now < change[0]:
            continue
        model_state.put(database, "modifying", None)
        database.db_instance_class = change[1]
        database.status = "available"
        _pending(database).pop("DBInstanceClass", None)


def install(runtime: Runtime) -> None:
    def wrap_call_action(original: Any) -> Any:
        def call_action(self: RDSResponse) -> Any:
            with runtime.lock:
                _settle(runtime, self.backend)
                return original(self)

        return call_action

    def wrap_modify_db_instance(original: Any) -> Any:
        def modify_db_instance(
            self: RDSBackend, db_instance_identifier: str, db_kwargs: Any
        ) -> DBInstance:
            database: DBInstance = self.describe_db_instances(db_instance_identifier)[0]
            new_class = db_kwargs.pop("db_instance_class", None)
            apply_now = str(db_kwargs.get("apply_immediately", False)).lower() == "true"
            pending = _pending(database)
            if new_class == database.db_instance_class:
                pending.pop("DBInstanceClass", None)
                new_class = None
            elif new_class is not None and not apply_now:
                pending["DBInstanceClass"] = new_class
                new_class = None
            elif new_class is None and apply_now:
                new_class = pending.get("DBInstanceClass")
            result: DBInstance = original(self, db_instance_identifier, db_kwargs)
            if new_class is not None:
                pending["DBInstanceClass"] = new_class
                until = runtime.deadline(runtime.timing.rds_modify)
                model_state.put(result, "modifying", (until, new_class))
                result.status = "modifying"
                if until <= runtime.now():
                    _settle(runtime, self)
            return result

        return modify_db_instance

    patch(RDSResponse, "call_action", wrap_call_action)
    patch(RDSBackend, "modify_db_instance", wrap_modify_db_instance)
