"""What one bench run starts, and stops again whatever happens: its own deployment of the platform
(namespace, databases, keys, a users and a catalog gateway, their projectors; the orders gateway, its
projectors and the order saga only for the order figures), the baselines' apps, the catalog data the
read figures need. Each is started on first use, so `--only` starts no more than
the chosen figures need; every start registers its undoing on the run's exit stack first."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from auth.tokens import load_issuer
from bench.baselines.eventsourcing_app import eventsourcing_database
from bench.catalog_data import create_products, product_bodies, wait_until_visible
from bench.load import LuaValue, WrkResult, render_script, run_wrk
from bench.platform import Platform
from bench.procfs import descendants, proc_status_kib
from bench.report import Row, wrk_row
from bench.throwaway import delete_indices, delete_namespace_topics, drop_databases
from tests.support.deployment import Deployment
from tests.support.edge import EdgeProcess, address
from tests.support.orders_client import new_customer_id
from tests.support.processes import (
    HttpService,
    ServiceProcess,
    free_port,
    wait_until_partitions_split,
    wait_until_split,
)
from tests.support.servers import Servers


@dataclass(frozen=True)
class Size:
    quick: bool
    seconds: float  # of each measured wrk run
    warmup_seconds: float  # a run before each measured one, not counted
    products: int  # the catalog the reads and searches run on
    adjusted_products: int  # products the stock adjustments spread over, on each side
    probe_idle_seconds: float
    append_commands: int  # through the event store, and through the plain producer
    producer_records: int  # ProducerPerformance
    replay_events: int
    orders: int  # placed and waited for until confirmed
    cold_start_events: int  # in the log a command side starts on
    page_loads: int  # of the storefront in Chromium, idle and under load
    state_aggregates: int  # in the store of a command side owning every partition
    state_commands: int  # on its hot and on its cold working set
    soak_minutes: float  # of steady creations, the command side's RSS sampled


QUICK = Size(True, 3, 1, 1_000, 200, 2, 2_000, 50_000, 20_000, 200, 100_000, 8, 20_000, 640, 0.5)
FULL = Size(
    False, 15, 3, 10_000, 1_000, 5, 20_000, 500_000, 1_000_000, 1_000, 1_000_000, 30, 10_000_000, 6_400, 10
)


@dataclass(frozen=True)
class Started:
    name: str
    pid: int
    rss_at_start_kib: int | None


@dataclass(frozen=True)
class Services:
    deployment: Deployment
    catalog_gateway: HttpService
    catalog_url: str
    users_url: str
    admin_token: str


@dataclass(frozen=True)
class OrderServices:
    orders_url: str
    customer_token: Callable[[], str]  # a new customer's token each call
    # No address to ask whether it is ready: a scenario notes it (note_started) once it has decided
    # the first orders, so that its "RSS once ready" is not that of a process still importing.
    saga: ServiceProcess


def process_id(process: ServiceProcess) -> int:
    # ServiceProcess keeps its Popen to itself; the memory figures need the pid.
    popen = process._process
    if popen is None:
        raise RuntimeError(f"{process.name} was not started")
    return popen.pid


def wait_answering(url: str, process: ServiceProcess, within: float = 90) -> None:
    """Wait until `url` answers 200 (the app has run its start-up), failing early if `process` exits."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        process.ensure_running()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {url} within {within}s:\n{process.log_tail()}")


class Harness:
    def __init__(self, stack: AsyncExitStack, servers: Servers, size: Size, work_dir: Path) -> None:
        self.stack = stack
        self.servers = servers
        self.size = size
        self.work_dir = work_dir
        self.rows: list[Row] = []
        self.started: list[Started] = []
        self._begun = time.monotonic()
        self._services: Services | None = None
        self._order_services: OrderServices | None = None
        self._trivial_url: str | None = None
        self._eventsourcing_url: str | None = None
        self._product_ids: list[int] | None = None
        self._product_error: Exception | None = None
        self._trivial: dict[int, Row] = {}
        self._edge: EdgeProcess | None = None
        self._platform: Platform | None = None

    def say(self, message: str) -> None:
        elapsed = int(time.monotonic() - self._begun)
        print(f"[bench {elapsed // 60:02d}:{elapsed % 60:02d}] {message}", flush=True)

    def record(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def script(self, name: str, template: str, values: Mapping[str, LuaValue]) -> Path:
        return render_script(template, values, self.work_dir / "lua" / f"{name}.lua")

    async def load(self, url: str, connections: int, script: Path | None = None) -> WrkResult:
        """A warm-up run, then the measured one."""
        if self.size.warmup_seconds > 0:
            await run_wrk(url, connections, self.size.warmup_seconds, script)
        return await run_wrk(url, connections, self.size.seconds, script)

    async def _start(self, process: ServiceProcess, ready: Callable[[], None] | None = None) -> None:
        self.stack.callback(process.stop)
        await asyncio.to_thread(process.start)  # an HttpService's start waits until /health answers
        if ready is not None:
            await asyncio.to_thread(ready)

    def note_started(self, *processes: ServiceProcess) -> None:
        """Remember the processes, with their RSS now that they are ready, for the memory figures
        (once each: a process noted already is left as it was)."""
        noted = {started.pid for started in self.started}
        for process in processes:
            pid = process_id(process)
            if pid not in noted:
                self.started.append(Started(process.name, pid, proc_status_kib(pid, "VmRSS")))

    async def services(self) -> Services:
        """The deployment and its four processes, with every command partition owned."""
        if self._services is None:
            deployment = Deployment(self.servers, self.work_dir, namespace=f"bench{uuid.uuid4().hex[:10]}")
            self.stack.push_async_callback(self._drop_deployment, deployment)
            self.say(f"provisioning deployment {deployment.namespace}")
            await asyncio.to_thread(deployment.provision)
            catalog = deployment.gateway("catalog", name="catalog-gateway")
            users = deployment.gateway("users", name="users-gateway")
            processes: list[ServiceProcess] = [
                catalog,
                users,
                deployment.projector("catalog", "catalog-search"),
                deployment.projector("users"),
            ]
            self.say("starting the users and catalog gateways and their projectors")
            await asyncio.gather(*(self._start(process) for process in processes))
            partitions = deployment.settings.kafka_partitions
            for context, gateway in (("catalog", catalog), ("users", users)):
                await asyncio.to_thread(
                    wait_until_partitions_split, context, [gateway], partitions, deployment.admin_token()
                )
            self.note_started(*processes)
            self._services = Services(deployment, catalog, catalog.url, users.url, deployment.admin_token())
        return self._services

    async def edge(self) -> EdgeProcess:
        """The edge (nginx, as `./run up` runs it) in front of the deployment's users and catalog gateways,
        serving the storefront."""
        if self._edge is None:
            services = await self.services()
            upstreams = {"users": [address(services.users_url)], "catalog": [address(services.catalog_url)]}
            edge = EdgeProcess("edge", upstreams, self.work_dir)
            await self._start(edge)
            self._edge = edge
        return self._edge

    async def extra_catalog_gateways(
        self, settings: Mapping[str, Mapping[str, str]]
    ) -> dict[str, HttpService]:
        """More catalog gateways of the deployment, one per entry of `settings` (its environment on top
        of the deployment's), once each has its share of the partitions. `stop_extra_catalog_gateways`
        stops them (else the end of the run does)."""
        services = await self.services()
        gateways: dict[str, HttpService] = {}
        for name, env in settings.items():
            gateway = services.deployment.gateway("catalog", name=f"catalog-gateway-{name}")
            gateway.env = {**gateway.env, **env}
            gateways[name] = gateway
        self.say(f"starting {len(gateways)} more catalog gateways ({', '.join(gateways)})")
        await asyncio.gather(*(self._start(gateway) for gateway in gateways.values()))
        await asyncio.to_thread(
            wait_until_partitions_split,
            "catalog",
            [services.catalog_gateway, *gateways.values()],
            services.deployment.settings.kafka_partitions,
            services.admin_token,
        )
        return gateways

    async def stop_extra_catalog_gateways(self, gateways: Iterable[HttpService]) -> None:
        """Stop them, and wait until the first catalog gateway owns every partition again, as the other
        figures expect."""
        services = await self.services()
        await asyncio.gather(*(asyncio.to_thread(gateway.stop) for gateway in gateways))
        await asyncio.to_thread(
            wait_until_partitions_split,
            "catalog",
            [services.catalog_gateway],
            services.deployment.settings.kafka_partitions,
            services.admin_token,
        )

    async def order_services(self) -> OrderServices:
        """The orders gateway, its projectors (the replica of the catalog, carts, orders) and the order
        saga, beside the deployment's catalog; started only for the figures that place orders."""
        if self._order_services is None:
            services = await self.services()
            deployment = services.deployment
            orders = deployment.gateway("orders", name="orders-gateway")
            projectors = deployment.projector("orders-products", "orders-carts", "orders")
            self.say("starting the orders gateway and its projectors")
            await asyncio.gather(self._start(orders), self._start(projectors))
            partitions = deployment.settings.kafka_partitions
            await asyncio.to_thread(
                wait_until_partitions_split, "orders", [orders], partitions, deployment.admin_token()
            )
            saga = deployment.order_saga(services.catalog_url, orders.url)
            self.say("starting the order saga")
            await self._start(saga)
            self.note_started(orders, projectors)
            issuer = load_issuer(deployment.settings)

            def customer_token() -> str:
                user_id = new_customer_id()  # the orders side takes the customer from the token
                return issuer.issue(user_id, f"customer{user_id}@example.com", "customer", datetime.now(UTC))

            self._order_services = OrderServices(orders.url, customer_token, saga)
        return self._order_services

    async def platform(self) -> Platform:
        """`./run up`'s platform (bench/platform.py) on a deployment of its own, every command partition
        owned; stopped at the end of the run."""
        if self._platform is None:
            deployment = await self.own_deployment("platform")
            platform = Platform(deployment, self.work_dir / "platform")
            self.stack.callback(platform.down)
            await self.start_platform(platform)
            self._platform = platform
        return self._platform

    async def start_platform(self, platform: Platform) -> None:
        """Start it (again), and wait until every command partition is owned."""
        self.say(f"starting the platform as ./run up runs it (logs in {platform.supervision.run_dir})")
        await asyncio.to_thread(platform.up)
        token = platform.deployment.admin_token()
        for context in ("users", "catalog", "orders", "payments"):
            urls = platform.instance_urls(context)
            partitions = platform.deployment.settings.kafka_partitions
            await asyncio.to_thread(wait_until_split, context, urls, partitions, token)

    async def own_deployment(self, name: str, order_payment_window_seconds: float = 1800.0) -> Deployment:
        """A deployment of a scenario's own (dropped at the end of the run), its work in a folder of its own."""
        work_dir = self.work_dir / name
        work_dir.mkdir(parents=True, exist_ok=True)
        deployment = Deployment(
            self.servers,
            work_dir,
            namespace=f"bench{uuid.uuid4().hex[:10]}",
            order_payment_window_seconds=order_payment_window_seconds,
        )
        self.stack.push_async_callback(self._drop_deployment, deployment)
        self.say(f"provisioning deployment {deployment.namespace} for {name}")
        await asyncio.to_thread(deployment.provision)
        return deployment

    async def _drop_deployment(self, deployment: Deployment) -> None:
        self.say(f"dropping deployment {deployment.namespace}")
        await delete_indices(self.servers.elasticsearch_url, f"{deployment.namespace.lower()}.")
        await delete_namespace_topics(self.servers.kafka_bootstrap, [deployment.namespace])
        databases = [  # provision creates the orders (and payments) databases too, whether or not used
            urlsplit(deployment.database_url(service)).path.lstrip("/")
            for service in ("users", "catalog", "orders", "payments")
        ]
        await asyncio.to_thread(drop_databases, self.servers.postgres_admin_url, databases)
        shutil.rmtree(self.work_dir / "keys", ignore_errors=True)

    async def product_ids(self) -> list[int]:
        """Ids of the bench's catalog: size.products varied products, visible in both read models."""
        if self._product_error is not None:  # not again for every figure that needs the catalog
            raise RuntimeError(
                "the bench's catalog could not be created (see above)"
            ) from self._product_error
        if self._product_ids is None:
            services = await self.services()
            self.say(f"creating {self.size.products:,} products through the catalog gateway")
            bodies = list(product_bodies(self.size.products))
            try:
                created = await create_products(services.catalog_url, services.admin_token, bodies)
                self.say("waiting until the products table and the search index have them all")
                await wait_until_visible(services.catalog_url, created, within=120 + self.size.products / 50)
            except Exception as error:
                self._product_error = error
                raise
            self._product_ids = created.ids
        return self._product_ids

    async def trivial_url(self) -> str:
        if self._trivial_url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = ServiceProcess(
                "trivial-app", ["-m", "bench.baselines.trivial_app", "--port", str(port)], {}, self.work_dir
            )
            self.say("starting the trivial FastAPI app")
            await self._start(process, lambda: wait_answering(f"{url}/", process))
            self.note_started(process)
            self._trivial_url = url
        return self._trivial_url

    async def trivial(self, connections: int) -> Row:
        """The trivial app's row at `connections`, measured once per run."""
        if connections not in self._trivial:
            url = await self.trivial_url()
            self.say(f"trivial app GET / at {connections} connections")
            result = await self.load(f"{url}/", connections)
            self._trivial[connections] = self.record(
                wrk_row(
                    f"trivial FastAPI app GET / @{connections}",
                    result,
                    target="the framework's ceiling",
                    label=f"trivial app @{connections}",
                )
            )
        return self._trivial[connections]

    async def eventsourcing_url(self) -> str:
        """The eventsourcing-library baseline, on a throwaway database."""
        if self._eventsourcing_url is None:
            database_url = self.stack.enter_context(eventsourcing_database(self.servers.postgres_admin_url))
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = ServiceProcess(
                "eventsourcing-app",
                [
                    "-m",
                    "bench.baselines.eventsourcing_app",
                    "--port",
                    str(port),
                    "--database-url",
                    database_url,
                ],
                {},
                self.work_dir,
            )
            self.say("starting the eventsourcing baseline app")
            await self._start(process, lambda: wait_answering(f"{url}/openapi.json", process))
            self.note_started(process)
            self._eventsourcing_url = url
        return self._eventsourcing_url

    def memory_rows(self) -> list[Row]:
        """Peak RSS (VmHWM) of every process the run started, their children, and the bench itself."""
        rows: list[Row] = []
        for started in self.started:
            peak = proc_status_kib(started.pid, "VmHWM")
            rows.append(
                Row(
                    figure=f"peak RSS: {started.name}",
                    value=None if peak is None else peak / 1024,
                    unit="MiB",
                    baseline=None if started.rss_at_start_kib is None else "RSS once ready",
                    baseline_value=None
                    if started.rss_at_start_kib is None
                    else started.rss_at_start_kib / 1024,
                    target="nothing grows without bound",
                )
            )
            for child in descendants(started.pid):
                child_peak = proc_status_kib(child, "VmHWM")
                if child_peak is not None:
                    rows.append(Row(f"peak RSS: {started.name} child {child}", child_peak / 1024, "MiB"))
        own = proc_status_kib(os.getpid(), "VmHWM")
        rows.append(Row("peak RSS: the bench driver", None if own is None else own / 1024, "MiB"))
        return rows
