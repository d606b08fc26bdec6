"""RDS: DescribeOrderableDBInstanceOptions for aurora-mysql, and its DBInstanceClass filter.

moto lists orderable options only for aurora-postgresql and neptune, and ignores the
`DBInstanceClass` and `Vpc` filters, so any class looks orderable for those engines and none
for the others. This extension answers for aurora-mysql with the classes AWS documents for
Aurora MySQL 3 ("Supported DB engines for DB instance classes" in the Aurora User Guide,
Concepts.DBInstanceClass.SupportAurora), one option per class and engine version, shaped
like AWS's `OrderableDBInstanceOption`, and applies the class filter for every engine.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import PaginatedResult
from moto.rds.models import RDSBackend
from moto.rds.responses import RDSResponse

from sandbox.extensions.patching import patch

ENGINE = "aurora-mysql"
# Aurora MySQL 3 versions the sandbox offers (the seed's cluster runs the first).
ENGINE_VERSIONS = ("8.0.mysql_aurora.3.05.2", "8.0.mysql_aurora.3.08.0")

_SIZES = {
    "db.r5": (
        "large",
        "xlarge",
        "2xlarge",
        "4xlarge",
        "8xlarge",
        "12xlarge",
        "16xlarge",
        "24xlarge",
    ),
    "db.r6g": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
    "db.r6i": (
        "large",
        "xlarge",
        "2xlarge",
        "4xlarge",
        "8xlarge",
        "12xlarge",
        "16xlarge",
        "24xlarge",
        "32xlarge",
    ),
    "db.r7g": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
    "db.r7i": (
        "large",
        "xlarge",
        "2xlarge",
        "4xlarge",
        "8xlarge",
        "12xlarge",
        "16xlarge",
        "24xlarge",
        "48xlarge",
    ),
    "db.r8g": (
        "large",
        "xlarge",
        "2xlarge",
        "4xlarge",
        "8xlarge",
        "12xlarge",
        "16xlarge",
        "24xlarge",
        "48xlarge",
    ),
    "db.x2g": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
    "db.t3": ("medium", "large"),
    "db.t4g": ("medium", "large"),
}
AURORA_MYSQL_CLASSES = (
    "db.serverless",
    *(f"{family}.{size}" for family, sizes in _SIZES.items() for size in sizes),
)


def _option(engine_version: str, instance_class: str, region: str) -> dict[str, Any]:
    return {
        "Engine": ENGINE,
        "EngineVersion": engine_version,
        "DBInstanceClass": instance_class,
        "LicenseModel": "general-public-license",
        "AvailabilityZones": [{"Name": f"{region}{zone}"} for zone in "acd"],
        "MultiAZCapable": False,
        "ReadReplicaCapable": False,
        "Vpc": True,
        "SupportsStorageEncryption": True,
        "StorageType": "aurora",
        "SupportsIops": False,
        "SupportsEnhancedMonitoring": True,
        "SupportsIAMDatabaseAuthentication": True,
        "SupportsPerformanceInsights": True,
        "AvailableProcessorFeatures": [],
        "SupportedEngineModes": ["provisioned"],
        "SupportsKerberosAuthentication": True,
        "OutpostCapable": False,
        "SupportedActivityStreamModes": ["async"],
        "SupportsGlobalDatabases": True,
        "SupportsClusters": True,
        "SupportedNetworkTypes": ["IPV4", "DUAL"],
    }


def aurora_mysql_options(region: str, engine_version: str | None) -> list[dict[str, Any]]:
    versions = [engine_version] if engine_version else list(ENGINE_VERSIONS)
    return [
        _option(version, instance_class, region)
        for version in versions
        if version in ENGINE_VERSIONS
        for instance_class in AURORA_MYSQL_CLASSES
    ]


def install() -> None:

    def wrap_backend(original: Any) -> Any:
        def describe_orderable_db_instance_options(
            self: RDSBackend, engine: str, engine_version: str
        ) -> list[dict[str, Any]]:
            if engine == ENGINE:
                return aurora_mysql_options(self.region_name, engine_version)
            result: list[dict[str, Any]] = original(self, engine, engine_version)
            return result

        return describe_orderable_db_instance_options

    def wrap_response(original: Any) -> Any:
        def describe_orderable_db_instance_options(self: RDSResponse) -> Any:
            options = self.backend.describe_orderable_db_instance_options(
                self.params.get("Engine"), self.params.get("EngineVersion")
            )
            wanted = self.params.get("DBInstanceClass")
            if wanted:
                options = [o for o in options if o.get("DBInstanceClass") == wanted]
            return PaginatedResult({"OrderableDBInstanceOptions": options})

        return describe_orderable_db_instance_options

    patch(RDSBackend, "describe_orderable_db_instance_options", wrap_backend)
    patch(RDSResponse, "describe_orderable_db_instance_options", wrap_response)
