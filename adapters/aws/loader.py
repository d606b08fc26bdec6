"""botocore's loader of service models, without its walk of every service's folder.

Before botocore loads a model (a service's API, its endpoint rules), it checks that the
service is one it knows by listing the folder of every service it ships (~430) and looking
for that kind of model in each: ~870 directory reads and ~2,600 file checks, ~10 ms for
each kind of model, in every process. A one-shot `kajitori run` loads two kinds, so a
twentieth of its start went there. `ServiceModels` answers the same question by looking in
the asked service's own folder; the full list is still made, once, for whoever reads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import overload

from botocore.loaders import Loader
from botocore.session import Session


class ServiceModels(Loader):
    def __init__(self, extra_search_paths: list[str] | None = None) -> None:
        super().__init__(extra_search_paths=extra_search_paths)
        self._known: dict[str, _KnownServices] = {}

    # botocore reads what it returns with `in` and, for an unknown service's error, as a
    # sequence: a lazy sequence, not a list.
    def list_available_services(self, type_name: str) -> Sequence[str]:  # type: ignore[override]
        known = self._known.get(type_name)
        if known is None:
            known = self._known[type_name] = _KnownServices(self, type_name)
        return known

    def has_model(self, service_name: str, type_name: str) -> bool:
        """Whether some API version of the service has a model of this kind (what the
        full list says of it)."""
        if not service_name or service_name.startswith(".") or os.sep in service_name:
            return False  # not a folder's name: no service botocore lists
        for location in self.search_paths:
            folder = os.path.join(location, service_name)
            if not os.path.isdir(folder):
                continue
            for version in os.listdir(folder):
                if self.file_loader.exists(os.path.join(folder, version, type_name)):
                    return True
        return False

    def every_service(self, type_name: str) -> list[str]:
        """botocore's own list: every service with a model of this kind, sorted."""
        listed: list[str] = super().list_available_services(type_name)
        return listed


class _KnownServices(Sequence[str]):
    """The services that have a model of one kind: `in` looks in one folder; reading the
    list makes it, once."""

    def __init__(self, loader: ServiceModels, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name
        self._asked: dict[str, bool] = {}
        self._all: list[str] | None = None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if self._all is not None:
            return name in self._all
        known = self._asked.get(name)
        if known is None:
            known = self._asked[name] = self._loader.has_model(name, self._type_name)
        return known

    def _listed(self) -> list[str]:
        if self._all is None:
            self._all = self._loader.every_service(self._type_name)
        return self._all

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._listed()[index]

    def __len__(self) -> int:
        return len(self._listed())

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed())


def install(session: Session) -> None:
    """Give `session` a `ServiceModels` loader over the same search paths as botocore's
    (AWS_DATA_PATH first, then ~/.aws/models and botocore's own data)."""
    data_path = session.get_config_variable("data_path")
    extra = (
        [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
        if data_path
        else None
    )
    session.register_component("data_loader", ServiceModels(extra_search_paths=extra))
