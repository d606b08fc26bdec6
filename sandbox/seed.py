"""The demo world the sandbox starts with, and the names in it.

Everything lives in account 123456789012, region ap-northeast-1, once per environment
(`staging`, `production`); ENV below stands for the environment:

ECR      repository `api`, image tags `v1`, `v2`, `v3` and `broken` (a rollout of `broken`
         fails: its tasks exit at start).
ECS      cluster `ENV`, service `api` (Fargate, desired 2, circuit breaker with rollback,
         steady on `api:v1`), task definition family `api-ENV`, container `app` (port 8080,
         environment APP_ENV=ENV, secret SECRET_KEY from SSM `/api/ENV/SECRET_KEY`).
Network  VPC 10.0.0.0/16 with subnets in ap-northeast-1a and ap-northeast-1c, security
         group `kajitori-demo`; two Elastic IPs (`nat-staging`, `nat-production`).
EC2      launch template `web-ENV` (t3.medium, Amazon Linux 2023 x86_64), two running
         instances from it tagged `kajitori:service=web`, `kajitori:env=ENV`,
         `Name=web-ENV`, `kajitori:version=v1`, with the instance profile `web-ssm` (so
         their SSM agent is registered), registered and healthy in target group
         `web-ENV-tg` (HTTP 8080) behind the ALB `web-ENV` (listener HTTP 80).
SSM      Run Command document `web-deploy` (parameter `version`, runs
         `/opt/app/deploy.sh VERSION`); a version `broken` fails.
AMIs     `worker-v1`, `worker-v2`, `worker-v3`, `worker-broken` (instances from it fail
         their health checks), each named by the parameter `/app/worker/ami/VERSION`.
ASG      group `worker-ENV` (launch template `worker-ENV` version 1, on `worker-v1`, with the
         version description `kajitori:version=v1`, t3.small, min 1, max 4, desired 1).
RDS      Aurora MySQL cluster `main-ENV` (database `app`, user `admin`), writer
         `main-ENV-1` and reader `main-ENV-2` (db.r6g.large).
Secrets  `kajitori/main-ENV/admin`: {"username", "password", "host": "127.0.0.1", "port": 3306}.
Route 53 private zone `example.internal.` on the VPC: `web.ENV`, `db.ENV`, `db-ro.ENV`.
Events   SQS queue `kajitori-events`, fed by the EventBridge rule `kajitori-events` on the
         default bus (CloudWatch alarms, ECS, Auto Scaling, RDS and AWS Health events);
         CloudWatch alarm `api-5xx-ENV` (HTTPCode_Target_5XX_Count of api in ENV, OK).
Quotas   applied: L-1216C47A (vCPUs) = 64, L-0263D0A3 (Elastic IPs) = 5; the rest default.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"
REGION = "ap-northeast-1"
ENVIRONMENTS = ("staging", "production")


@dataclass(frozen=True)
class DemoSeed:
    """Names and sizes of the seeded resources."""

    account_id: str = ACCOUNT_ID
    region: str = REGION
    environments: tuple[str, ...] = ENVIRONMENTS
    availability_zones: tuple[str, ...] = ("ap-northeast-1a", "ap-northeast-1c")
    vpc_cidr: str = "10.0.0.0/16"
    subnet_cidrs: tuple[str, ...] = ("10.0.1.0/24", "10.0.2.0/24")
    security_group: str = "kajitori-demo"

    ecr_repository: str = "api"
    image_tags: tuple[str, ...] = ("v1", "v2", "v3", "broken")
    running_tag: str = "v1"
    broken_tag: str = "broken"
    ecs_service: str = "api"
    ecs_container: str = "app"
    ecs_desired_count: int = 2
    container_port: int = 8080

    web_service: str = "web"
    web_instance_type: str = "t3.medium"
    web_instance_count: int = 2
    web_image_name_pattern: str = "al2023-ami-2023.*-x86_64"
    worker_service: str = "worker"
    worker_instance_type: str = "t3.small"
    worker_min_size: int = 1
    worker_max_size: int = 4
    worker_desired_capacity: int = 1
    worker_versions: tuple[str, ...] = ("v1", "v2", "v3", "broken")
    instance_profile: str = "web-ssm"
    web_document: str = "web-deploy"

    database: str = "main"
    db_engine: str = "aurora-mysql"
    db_engine_version: str = "8.0.mysql_aurora.3.05.2"
    db_instance_class: str = "db.r6g.large"
    db_name: str = "app"
    db_username: str = "admin"
    db_secret_host: str = "127.0.0.1"
    db_port: int = 3306

    hosted_zone: str = "example.internal."
    applied_quotas: dict[tuple[str, str], float] = field(
        default_factory=lambda: {("ec2", "L-1216C47A"): 64.0, ("ec2", "L-0263D0A3"): 5.0}
    )
    elastic_ip_names: tuple[str, ...] = ("nat-staging", "nat-production")
    events_queue: str = "kajitori-events"
    events_rule: str = "kajitori-events"
    event_sources: tuple[str, ...] = (
        "aws.cloudwatch",
        "aws.ecs",
        "aws.autoscaling",
        "aws.rds",
        "aws.health",
    )

    def alarm(self, env: str) -> str:
        return f"{self.ecs_service}-5xx-{env}"

    def events_queue_url(self) -> str:
        """The queue's URL as AWS names it (the sandbox finds the queue by its name)."""
        return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.events_queue}"

    def ecs_cluster(self, env: str) -> str:
        return env

    def task_family(self, env: str) -> str:
        return f"{self.ecs_service}-{env}"

    def image_uri(self, tag: str) -> str:
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{self.ecr_repository}:{tag}"

    def secret_parameter_arn(self, env: str) -> str:
        return f"arn:aws:ssm:{self.region}:{self.account_id}:parameter/api/{env}/SECRET_KEY"

    def execution_role_arn(self, env: str) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.task_family(env)}-execution"

    def task_role_arn(self, env: str) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.task_family(env)}-task"

    def web_launch_template(self, env: str) -> str:
        return f"{self.web_service}-{env}"

    def web_target_group(self, env: str) -> str:
        return f"{self.web_service}-{env}-tg"

    def web_load_balancer(self, env: str) -> str:
        return f"{self.web_service}-{env}"

    def web_tags(self, env: str) -> dict[str, str]:
        return {
            "kajitori:service": self.web_service,
            "kajitori:env": env,
            "Name": f"{self.web_service}-{env}",
            "kajitori:version": self.running_tag,
        }

    def worker_image_parameter(self, version: str) -> str:
        return f"/app/{self.worker_service}/ami/{version}"

    def worker_image_name(self, version: str) -> str:
        return f"{self.worker_service}-{version}"

    def worker_group(self, env: str) -> str:
        return f"{self.worker_service}-{env}"

    def worker_launch_template(self, env: str) -> str:
        return f"{self.worker_service}-{env}"

    def db_cluster(self, env: str) -> str:
        return f"{self.database}-{env}"

    def db_writer(self, env: str) -> str:
        return f"{self.database}-{env}-1"

    def db_reader(self, env: str) -> str:
        return f"{self.database}-{env}-2"

    def db_secret_id(self, env: str) -> str:
        return f"kajitori/{self.database}-{env}/admin"

    def db_password(self, env: str) -> str:
        """Fixed per environment, so that a local MariaDB can be set up to match."""
        digest = hashlib.sha256(f"kajitori-demo-{env}".encode()).digest()
        return base64.b32encode(digest).decode().rstrip("=").lower()[:24]

    def db_admin(self, env: str) -> str:
        """One name per environment, so that one local MariaDB can stand in for both."""
        return f"{self.db_username}_{env}"

    def db_secret(self, env: str) -> dict[str, Any]:
        return {
            "username": self.db_admin(env),
            "password": self.db_password(env),
            "host": self.db_secret_host,
            "port": self.db_port,
        }


SEED = DemoSeed()


def demo_database_secret_id(env: str) -> str:
    return SEED.db_secret_id(env)


def _manifest(tag: str) -> str:
    """A Docker image manifest whose digests are unique to the tag."""

    def digest(kind: str) -> str:
        return "sha256:" + hashlib.sha256(f"kajitori-demo-api-{tag}-{kind}".encode()).hexdigest()

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1472,
                "digest": digest("config"),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 31_457_280,
                    "digest": digest("layer"),
                }
            ],
        }
    )


@dataclass(frozen=True)
class _Network:
    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str
    image_id: str


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def seed_demo(
    clients: Any, *, deregistration_delay: float, seed: DemoSeed = SEED
) -> dict[str, Any]:
    """Create the demo world through the AWS APIs; return the ids AWS chose.

    `clients` has one boto3 client per service as attributes (`clients.ecs`, ...).
    Applied quotas are set before this runs (they have no AWS API to set them).
    """
    ids: dict[str, Any] = {}
    ecr, ec2 = clients.ecr, clients.ec2

    ecr.create_repository(repositoryName=seed.ecr_repository)
    for tag in seed.image_tags:
        ecr.put_image(
            repositoryName=seed.ecr_repository,
            imageManifest=_manifest(tag),
            imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
            imageTag=tag,
        )

    vpc_id = ec2.create_vpc(
        CidrBlock=seed.vpc_cidr,
        TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags({"Name": "kajitori-demo"})}],
    )["Vpc"]["VpcId"]
    # Private hosted zones need DNS support and hostnames in the VPC.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_ids = [
        ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=zone,
            TagSpecifications=[
                {"ResourceType": "subnet", "Tags": _tags({"Name": f"kajitori-demo-{zone[-2:]}"})}
            ],
        )["Subnet"]["SubnetId"]
        for cidr, zone in zip(seed.subnet_cidrs, seed.availability_zones, strict=True)
    ]
    group_id = ec2.create_security_group(
        GroupName=seed.security_group, Description="kajitori demo", VpcId=vpc_id
    )["GroupId"]
    ids.update(vpc_id=vpc_id, subnet_ids=subnet_ids, security_group_id=group_id)
    for name in seed.elastic_ip_names:
        ec2.allocate_address(
            Domain="vpc",
            TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": _tags({"Name": name})}],
        )

    images = ec2.describe_images(
        Owners=["amazon"],
        Filters=[
            {"Name": "name", "Values": [seed.web_image_name_pattern]},
            {"Name": "architecture", "Values": ["x86_64"]},
        ],
    )["Images"]
    image_id = sorted(images, key=lambda image: str(image["Name"]))[-1]["ImageId"]
    ids["image_id"] = image_id
    network = _Network(vpc_id, subnet_ids, group_id, image_id)

    clients.rds.create_db_subnet_group(
        DBSubnetGroupName="kajitori-demo",
        DBSubnetGroupDescription="kajitori demo",
        SubnetIds=subnet_ids,
    )

    _seed_ssm_agent_profile(clients, seed)
    _seed_web_document(clients, seed)
    worker_images = _seed_worker_images(clients, seed)
    ids["worker_image_ids"] = worker_images
    for env in seed.environments:
        _seed_ecs(clients, seed, env, network)
        ids[f"web_instance_ids/{env}"] = _seed_web(
            clients, seed, env, network, deregistration_delay
        )
        _seed_worker(clients, seed, env, network, worker_images[seed.running_tag])
        _seed_database(clients, seed, env, network)

    _seed_dns(clients, seed, vpc_id)
    ids["events_queue_url"] = _seed_events(clients, seed)
    return ids


def _seed_events(clients: Any, seed: DemoSeed) -> str:
    """The queue kajitori long-polls, the rule that feeds it, and one alarm per environment."""
    sqs, events, cloudwatch = clients.sqs, clients.events, clients.cloudwatch
    url = str(sqs.create_queue(QueueName=seed.events_queue)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=seed.events_rule,
        EventPattern=json.dumps({"source": list(seed.event_sources)}),
        State="ENABLED",
        Description="AWS events and alarms for kajitori",
    )
    events.put_targets(Rule=seed.events_rule, Targets=[{"Id": "kajitori", "Arn": arn}])
    for env in seed.environments:
        cloudwatch.put_metric_alarm(
            AlarmName=seed.alarm(env),
            AlarmDescription=f"5xx answers of {seed.ecs_service} in {env}",
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=10.0,
            ComparisonOperator="GreaterThanThreshold",
        )
    return url


def _seed_ecs(clients: Any, seed: DemoSeed, env: str, network: _Network) -> None:
    clients.ssm.put_parameter(
        Name=f"/api/{env}/SECRET_KEY",
        Value=hashlib.sha256(f"kajitori-demo-secret-{env}".encode()).hexdigest(),
        Type="SecureString",
    )
    ecs = clients.ecs
    ecs.create_cluster(clusterName=seed.ecs_cluster(env))
    definition = ecs.register_task_definition(
        family=seed.task_family(env),
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        executionRoleArn=seed.execution_role_arn(env),
        taskRoleArn=seed.task_role_arn(env),
        containerDefinitions=[
            {
                "name": seed.ecs_container,
                "image": seed.image_uri(seed.running_tag),
                "cpu": 256,
                "memory": 512,
                "essential": True,
                "portMappings": [{"containerPort": seed.container_port, "protocol": "tcp"}],
                "environment": [{"name": "APP_ENV", "value": env}],
                "secrets": [{"name": "SECRET_KEY", "valueFrom": seed.secret_parameter_arn(env)}],
            }
        ],
    )["taskDefinition"]
    ecs.create_service(
        cluster=seed.ecs_cluster(env),
        serviceName=seed.ecs_service,
        taskDefinition=definition["taskDefinitionArn"],
        desiredCount=seed.ecs_desired_count,
        launchType="FARGATE",
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": network.subnet_ids,
                "securityGroups": [network.security_group_id],
                "assignPublicIp": "DISABLED",
            }
        },
    )


def add_services_like(
    ecs: Any, cluster: str, names: list[str], *, like: str = "api", desired: int = 2
) -> None:
    """More ECS services in `cluster`, each running what service `like` runs, the same way
    (for benchmarks and tests that need many services)."""
    model = ecs.describe_services(cluster=cluster, services=[like])["services"][0]
    for name in names:
        ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=model["taskDefinition"],
            desiredCount=desired,
            launchType="FARGATE",
            deploymentConfiguration=model["deploymentConfiguration"],
            networkConfiguration=model["networkConfiguration"],
        )


def _seed_web(
    clients: Any, seed: DemoSeed, env: str, network: _Network, deregistration_delay: float
) -> list[str]:
    ec2, elbv2 = clients.ec2, clients.elbv2
    ec2.create_launch_template(
        LaunchTemplateName=seed.web_launch_template(env),
        LaunchTemplateData={
            "ImageId": network.image_id,
            "InstanceType": seed.web_instance_type,
            "SecurityGroupIds": [network.security_group_id],
            "TagSpecifications": [{"ResourceType": "instance", "Tags": _tags(seed.web_tags(env))}],
        },
    )
    group_arn = elbv2.create_target_group(
        Name=seed.web_target_group(env),
        Protocol="HTTP",
        Port=seed.container_port,
        VpcId=network.vpc_id,
        TargetType="instance",
        HealthCheckPath="/healthz",
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=group_arn,
        Attributes=[
            {
                "Key": "deregistration_delay.timeout_seconds",
                "Value": str(max(1, math.ceil(deregistration_delay))),
            }
        ],
    )
    balancer_arn = elbv2.create_load_balancer(
        Name=seed.web_load_balancer(env),
        Subnets=network.subnet_ids,
        SecurityGroups=[network.security_group_id],
        Scheme="internal",
        Type="application",
    )["LoadBalancers"][0]["LoadBalancerArn"]
    elbv2.create_listener(
        LoadBalancerArn=balancer_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}],
    )
    instance_ids: list[str] = []
    for index in range(seed.web_instance_count):
        reservation = ec2.run_instances(
            LaunchTemplate={"LaunchTemplateName": seed.web_launch_template(env)},
            SubnetId=network.subnet_ids[index % len(network.subnet_ids)],
            IamInstanceProfile={"Name": seed.instance_profile},
            MinCount=1,
            MaxCount=1,
        )
        instance_ids.extend(i["InstanceId"] for i in reservation["Instances"])
    elbv2.register_targets(
        TargetGroupArn=group_arn,
        Targets=[{"Id": i, "Port": seed.container_port} for i in instance_ids],
    )
    return instance_ids


def _seed_ssm_agent_profile(clients: Any, seed: DemoSeed) -> None:
    """The instance profile that lets the web instances' SSM agent register."""
    iam = clients.iam
    iam.create_role(
        RoleName=seed.instance_profile,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    # On AWS the role carries the managed policy AmazonSSMManagedInstanceCore; the
    # sandbox loads no AWS managed policies and registers any instance with a profile.
    iam.create_instance_profile(InstanceProfileName=seed.instance_profile)
    iam.add_role_to_instance_profile(
        InstanceProfileName=seed.instance_profile, RoleName=seed.instance_profile
    )


def _seed_web_document(clients: Any, seed: DemoSeed) -> None:
    clients.ssm.create_document(
        Name=seed.web_document,
        DocumentType="Command",
        DocumentFormat="JSON",
        Content=json.dumps(
            {
                "schemaVersion": "2.2",
                "description": "Deploy a release of web on this instance.",
                "parameters": {
                    "version": {"type": "String", "description": "The release to deploy."}
                },
                "mainSteps": [
                    {
                        "action": "aws:runShellScript",
                        "name": "deploy",
                        "inputs": {"runCommand": ["/opt/app/deploy.sh {{ version }}"]},
                    }
                ],
            }
        ),
    )


def _seed_worker_images(clients: Any, seed: DemoSeed) -> dict[str, str]:
    """One AMI per worker version, each named by its SSM parameter."""
    images: dict[str, str] = {}
    for version in seed.worker_versions:
        image_id = clients.ec2.register_image(
            Name=seed.worker_image_name(version),
            Description=f"worker {version}",
            Architecture="x86_64",
            RootDeviceName="/dev/xvda",
        )["ImageId"]
        clients.ssm.put_parameter(
            Name=seed.worker_image_parameter(version), Value=image_id, Type="String"
        )
        images[version] = image_id
    return images


def _seed_worker(clients: Any, seed: DemoSeed, env: str, network: _Network, image_id: str) -> None:
    clients.ec2.create_launch_template(
        LaunchTemplateName=seed.worker_launch_template(env),
        VersionDescription=f"kajitori:version={seed.running_tag}",
        LaunchTemplateData={
            "ImageId": image_id,
            "InstanceType": seed.worker_instance_type,
            "SecurityGroupIds": [network.security_group_id],
        },
    )
    tags = {
        "kajitori:service": seed.worker_service,
        "kajitori:env": env,
        "Name": seed.worker_group(env),
    }
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=seed.worker_group(env),
        LaunchTemplate={
            "LaunchTemplateName": seed.worker_launch_template(env),
            # A version number: AutoRollback is not supported with $Latest or $Default.
            "Version": "1",
        },
        MinSize=seed.worker_min_size,
        MaxSize=seed.worker_max_size,
        DesiredCapacity=seed.worker_desired_capacity,
        VPCZoneIdentifier=",".join(network.subnet_ids),
        Tags=[
            {
                "ResourceId": seed.worker_group(env),
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": True,
            }
            for key, value in tags.items()
        ],
    )


def _seed_database(clients: Any, seed: DemoSeed, env: str, network: _Network) -> None:
    rds = clients.rds
    rds.create_db_cluster(
        DBClusterIdentifier=seed.db_cluster(env),
        Engine=seed.db_engine,
        EngineVersion=seed.db_engine_version,
        DatabaseName=seed.db_name,
        MasterUsername=seed.db_admin(env),
        MasterUserPassword=seed.db_password(env),
        DBSubnetGroupName="kajitori-demo",
        VpcSecurityGroupIds=[network.security_group_id],
        Port=seed.db_port,
    )
    for identifier in (seed.db_writer(env), seed.db_reader(env)):
        rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            DBClusterIdentifier=seed.db_cluster(env),
            DBInstanceClass=seed.db_instance_class,
            Engine=seed.db_engine,
        )
    clients.secretsmanager.create_secret(
        Name=seed.db_secret_id(env),
        Description=f"Admin credentials of the {seed.db_cluster(env)} Aurora cluster",
        SecretString=json.dumps(seed.db_secret(env)),
    )


def _seed_dns(clients: Any, seed: DemoSeed, vpc_id: str) -> None:
    route53, rds, elbv2 = clients.route53, clients.rds, clients.elbv2
    zone_id = route53.create_hosted_zone(
        Name=seed.hosted_zone,
        CallerReference="kajitori-demo",
        HostedZoneConfig={"Comment": "kajitori demo", "PrivateZone": True},
        VPC={"VPCRegion": seed.region, "VPCId": vpc_id},
    )["HostedZone"]["Id"]
    changes = []
    for env in seed.environments:
        cluster = rds.describe_db_clusters(DBClusterIdentifier=seed.db_cluster(env))["DBClusters"][
            0
        ]
        balancer = elbv2.describe_load_balancers(Names=[seed.web_load_balancer(env)])[
            "LoadBalancers"
        ][0]
        for name, target in (
            (f"web.{env}", balancer["DNSName"]),
            (f"db.{env}", cluster["Endpoint"]),
            (f"db-ro.{env}", cluster["ReaderEndpoint"]),
        ):
            changes.append(
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"{name}.{seed.hosted_zone}",
                        "Type": "CNAME",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": target}],
                    },
                }
            )
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
