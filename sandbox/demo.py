"""The demo's config (`sandbox/demo.yaml`, linked as `examples/demo.yaml`), as `kajitori demo`
and `kajitori sandbox` run it: pointed at the local demo database when one runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.database import PROGRAMS, DemoDatabase, Programs, missing_packages

DEMO_CONFIG = Path(__file__).parent / "demo.yaml"


def demo_config_data(database: DemoDatabase | None, *, store: str | None = None) -> dict[str, Any]:
    """The demo config, its databases at `database` (when given), its store at `store`."""
    data: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    if store is not None:
        data["store"] = store
    if database is not None:
        for env in data["environments"].values():
            for entry in env.get("databases", {}).values():
                database.point(entry)
    return data


def start_demo_database(
    folder: Path, programs: Programs = PROGRAMS
) -> tuple[DemoDatabase | None, str]:
    """The demo database started in `folder`, or None; and a line that says which."""
    missing = missing_packages(programs)
    if missing:
        return None, (
            f"db open and sql are off: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed (`make system-packages`)"
        )
    database = DemoDatabase(folder)
    try:
        database.start()
    except Exception as error:
        # MissingProgram, a server that exits at start, a port taken: the demo goes on without.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return None, f"db open and sql are off: the demo database did not start ({first})"
    assert database.mariadb is not None and database.bastion is not None
    return database, (
        f"database main: MariaDB on 127.0.0.1:{database.mariadb.port}, "
        f"through the SSH bastion on 127.0.0.1:{database.bastion.port}"
    )
