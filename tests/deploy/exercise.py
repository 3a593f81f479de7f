"""Runs the shipped deployment's contents the way docker-compose.yml runs them, on a machine whose
container engine cannot obtain the images' base layers (docs/deploy.md, "What was exercised").

Started by scripts/exercise-deploy.sh as root inside fresh network and mount namespaces, so the
stack's fixed ports (5432, 6379, 50051, 8080, 8081) and addresses are its own. Everything it runs
comes from the shipped files, read here rather than restated:

- `docker-compose config` (Compose v2, with .env.example and generated secrets) gives each
  service's environment, command, healthcheck, read-only root, dropped capabilities,
  no-new-privileges, published ports and Envoy's fixed address on the `proxy` network;
- the Dockerfile's `app` stage gives the image's ENV, USER, WORKDIR, ENTRYPOINT/CMD and
  HEALTHCHECK, its `envoy-config` stage the sed expressions (and build-arg defaults) that render
  envoy/envoy.yaml for the Envoy image;
- the `app` container is a root directory laid out as the image is (/usr/local/bin/fileorg,
  /var/lib/fileorg owned by 65532, the console at /usr/share/fileorg/console, glibc and CA
  certificates as distroless/cc has them), mounted read-only with the `storage` volume writable,
  entered with chroot and run as 65532 with no capabilities and no-new-privileges; `/etc/hosts`
  resolves the compose service names (postgres, redis) as compose's DNS would;
- the `envoy` container is Envoy 1.40 (the image's version) in its own read-only root as uid 101,
  with the rendered config, the descriptor `fileorg descriptor` writes and the OpenAPI document;
  `app-upstream` resolves to Envoy's fixed compose address, put on loopback, so the server sees
  Envoy's connections from exactly the address TRUSTED_PROXIES names;
- postgres and redis are the machine's PostgreSQL 15 and Redis, started as their images start
  them (POSTGRES_USER/PASSWORD/DB, `redis-server --appendonly yes`).

Each compose healthcheck runs as its command (pg_isready, redis-cli ping, `fileorg healthcheck`
inside the app root as 65532), in compose's order (depends_on: service_healthy). Then, through
the published ports: /health and a REST register, login, upload and download through Envoy, a gRPC
health probe through Envoy, grpc-web with CORS from the console's origin (and not from another),
the console itself (index, assets, /config.json naming CONSOLE_API_URL, its CSP, and a sign-in in
real Chromium, tests/deploy/console_sign_in.mjs), the REST docs page Envoy fetches from the
console listener, the processes' users, and a graceful stop.

Any failure exits non-zero; the logs and the rendered files stay in data/test-artifacts/deploy/.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILEORG = Path(os.environ["FILEORG_BIN"])
ENVOY = Path(os.environ["ENVOY_BIN"])
COMPOSE = ROOT / ".venv" / "bin" / "docker-compose"
ARTIFACTS = ROOT / "data" / "test-artifacts" / "deploy"
WORK = Path(os.environ["EXERCISE_WORK"])

PROCS: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"exercise-deploy: {msg}", flush=True)


def fail(msg: str) -> None:
    raise SystemExit(f"exercise-deploy: FAIL: {msg}")


def need(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


# ------------------------------------------------------------------ the shipped files, read


def compose_config() -> dict:
    """docker-compose.yml as Compose v2 resolves it, with .env.example and generated secrets."""
    project = WORK / "project"
    project.mkdir()
    shutil.copy(ROOT / "docker-compose.yml", project / "docker-compose.yml")
    env = (ROOT / ".env.example").read_text()
    env = env.replace("JWT_SECRET_KEY=CHANGE-ME", f"JWT_SECRET_KEY={secrets.token_hex(32)}")
    env = env.replace("POSTGRES_PASSWORD=CHANGE-ME", f"POSTGRES_PASSWORD={secrets.token_hex(16)}")
    left = re.findall(r"^\w+=CHANGE-ME", env, re.M)
    need(not left, f".env.example has a CHANGE-ME this exercise does not fill: {left}")
    (project / ".env").write_text(env)
    out = run([str(COMPOSE), "-f", str(project / "docker-compose.yml"), "--project-directory",
               str(project), "--profile", "worker", "config", "--format", "json"]).stdout
    (ARTIFACTS / "compose.json").write_text(out)
    return json.loads(out)


def dockerfile_stage(name: str) -> list[str]:
    """The instructions of one Dockerfile stage, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").rstrip() + " " if raw.endswith("\\") else raw
        if not raw.endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    stage, found = [], False
    for line in lines:
        if line.startswith("FROM "):
            found = line.endswith(f" AS {name}")
            continue
        if found:
            stage.append(line)
    need(bool(stage), f"Dockerfile has no stage {name}")
    return stage


def image_config() -> dict:
    """ENV, USER, WORKDIR, ENTRYPOINT, CMD and HEALTHCHECK of the Dockerfile's app stage."""
    config: dict = {"env": {}, "copies": []}
    for line in dockerfile_stage("app"):
        word, _, rest = line.partition(" ")
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                config["env"][key] = value
        elif word == "USER":
            config["user"] = rest.strip()
        elif word == "WORKDIR":
            config["workdir"] = rest.strip()
        elif word in ("ENTRYPOINT", "CMD"):
            config[word.lower()] = json.loads(rest)
        elif word == "HEALTHCHECK":
            config["healthcheck"] = json.loads(rest.split(" CMD ", 1)[1])
        elif word == "COPY":
            config["copies"].append(rest)
    return config


def envoy_config() -> str:
    """envoy/envoy.yaml rendered as the Dockerfile's envoy-config stage renders it."""
    stage = dockerfile_stage("envoy-config")
    args = {}
    for line in stage:
        m = re.match(r"ARG (\w+)=(\S+)", line)
        if m:
            args[m.group(1)] = m.group(2)
    run_line = next(line for line in stage if line.startswith("RUN ") and " sed " in line)
    exprs = re.findall(r'-e "([^"]+)"', run_line)
    need(len(exprs) >= 5, f"the envoy-config stage's sed expressions: {exprs}")
    rendered = []
    for e in exprs:
        for key, value in args.items():
            e = e.replace("${" + key + "}", value)
        need("${" not in e, f"an unknown build arg in {e}")
        rendered += ["-e", e]
    return run(["sed", *rendered, str(ROOT / "envoy" / "envoy.yaml")]).stdout


# ------------------------------------------------------------------ the machine's servers


def postgres_bindir() -> Path:
    """PostgreSQL's server binaries: initdb on PATH (this project's machines), else the newest
    of Debian/Ubuntu's /usr/lib/postgresql/<version>/bin (GitHub's runners)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    need(bool(versions), "no PostgreSQL server binaries (initdb)")
    return versions[-1].parent


def redis_path() -> str:
    """A directory with `redis-server` in it: the machine's, or (redis-tools only, as on CI) a
    link to redis-check-rdb, the same binary, which runs as the server under any other name."""
    if shutil.which("redis-server"):
        return os.path.dirname(shutil.which("redis-server"))
    check = shutil.which("redis-check-rdb")
    need(check is not None, "no redis-server (nor redis-check-rdb) on PATH")
    bindir = WORK / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "redis-server").symlink_to(check)
    return str(bindir)


def user_exists(name: str) -> bool:
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# ------------------------------------------------------------------ container roots


def copy_with_libs(binary: Path, root: Path, dest: str) -> None:
    """The binary at dest in root, and the shared libraries it loads at their own paths."""
    target = root / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    for lib in re.findall(r"(/\S+\.so[.\d]*)", run(["ldd", str(binary)]).stdout):
        path = root / lib.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            shutil.copy2(os.path.realpath(lib), path)


def base_root(root: Path, users: str, hosts: str) -> None:
    """What a minimal image has: /etc/passwd, /etc/group, /etc/hosts, CA certificates, /tmp."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text(users)
    groups = "".join(f"{line.split(':')[0]}:x:{line.split(':')[3]}:\n" for line in users.splitlines())
    (root / "etc" / "group").write_text(groups)
    (root / "etc" / "hosts").write_text(hosts)
    (root / "etc" / "nsswitch.conf").write_text("hosts: files\n")
    certs = root / "etc" / "ssl" / "certs"
    certs.mkdir(parents=True)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", certs / "ca-certificates.crt")
    for d in ("proc", "dev", "tmp"):
        (root / d).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)


def mount(*args: str) -> None:
    run(["mount", *args])


def seal(root: Path) -> None:
    """The root read-only (compose `read_only: true`), with /proc and a private /dev on top."""
    mount("--bind", str(root), str(root))
    mount("-o", "remount,bind,ro", str(root))
    mount("--bind", "/proc", str(root / "proc"))
    mount("-t", "tmpfs", "-o", "mode=755,size=16m", "tmpfs", str(root / "dev"))
    for dev in ("null", "zero", "random", "urandom"):
        (root / "dev" / dev).touch()
        mount("--bind", f"/dev/{dev}", str(root / "dev" / dev))
    (root / "dev" / "shm").mkdir()
    mount("-t", "tmpfs", "-o", "mode=1777,size=64m", "tmpfs", str(root / "dev" / "shm"))


def no_new_privs() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS = 38
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def in_container(root: Path, uid: int, gid: int, workdir: str):
    """preexec_fn: chroot into root, cd to the WORKDIR, drop to uid:gid (every capability goes
    with root), no-new-privileges (compose's security_opt)."""

    def enter() -> None:
        os.chroot(root)
        os.chdir(workdir)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        no_new_privs()

    return enter


def start(name: str, cmd: list[str], env: dict, **kw) -> subprocess.Popen:
    out = open(ARTIFACTS / f"{name}.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, **kw)
    PROCS.append(proc)
    log(f"started {name} (pid {proc.pid}): {' '.join(cmd)}")
    return proc


def seconds(value, default: float) -> float:
    """A compose duration as `config` prints it (Go's format: 15s, 1m0s, 500ms), in seconds."""
    if value is None:
        return default
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", str(value))
    need(bool(parts) and "".join(n + u for n, u in parts) == str(value), f"a duration: {value!r}")
    return sum(float(n) * units[u] for n, u in parts)


def wait_healthy(name: str, check, healthcheck: dict, proc: subprocess.Popen | None = None,
                 what: str = "its compose healthcheck passed") -> None:
    """Runs a compose healthcheck until it passes, within the time compose gives it
    (start_period + interval x retries, each try bounded by its timeout)."""
    budget = seconds(healthcheck.get("start_period"), 0) + \
        seconds(healthcheck.get("interval"), 30) * healthcheck.get("retries", 3)
    deadline = time.monotonic() + budget
    timeout = seconds(healthcheck.get("timeout"), 30)
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            fail(f"{name} exited ({proc.returncode}) before it was healthy: see {name}.log")
        try:
            done = check(timeout)
            if done.returncode == 0:
                log(f"{name} is healthy ({what})")
                return
            last = (done.stdout or "") + (done.stderr or "")
        except subprocess.TimeoutExpired:
            last = "timed out"
        time.sleep(0.5)
    fail(f"{name} did not become healthy within {budget:.0f}s: {last.strip()}")


# ------------------------------------------------------------------ HTTP


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def header(headers: dict, name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


# ------------------------------------------------------------------ the exercise


def main() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    compose = compose_config()
    services = compose["services"]
    image = image_config()
    need(any(c.endswith(" /usr/local/bin/fileorg") for c in image["copies"]),
         "the app image no longer has /usr/local/bin/fileorg")
    console_copy = next((c for c in image["copies"] if "console" in c), None)
    need(console_copy is not None, "the app image copies no console")
    console_dest = console_copy.split()[-1]
    need(image["env"].get("CONSOLE_DIR") == console_dest,
         f"CONSOLE_DIR {image['env'].get('CONSOLE_DIR')} is not where the console is ({console_dest})")

    # The networks: one namespace stands in for compose's; Envoy's fixed address on `proxy`.
    envoy_ip = services["envoy"]["networks"]["proxy"]["ipv4_address"]
    run(["ip", "link", "set", "lo", "up"])
    run(["ip", "addr", "add", f"{envoy_ip}/32", "dev", "lo"])
    ports = {name: {p["target"]: int(p["published"]) for p in svc.get("ports", [])}
             for name, svc in services.items()}
    for name, published in ports.items():
        for target, host in published.items():
            need(target == host, f"{name}: port {host}:{target}; this exercise publishes ports as is")

    # ---------------------------------------------------------------- postgres
    pg = services["postgres"]
    pg_env = {k: v for k, v in pg["environment"].items() if v is not None}
    pgdata, sockets = WORK / "postgres_data", WORK / "pg-run"
    for d in (pgdata, sockets):
        d.mkdir()
        shutil.chown(d, "postgres", "postgres")
    # The host's own server may have its socket in /var/run/postgresql: this namespace gets its own
    # there, so the compose healthcheck (pg_isready over the default socket) asks this server.
    os.makedirs("/var/run/postgresql", exist_ok=True)  # absent where no server is installed
    mount("--bind", str(sockets), "/var/run/postgresql")
    pwfile = WORK / "pg-password"
    pwfile.write_text(pg_env["POSTGRES_PASSWORD"])
    shutil.chown(pwfile, "postgres", "postgres")
    bindir = postgres_bindir()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    # What the image's entrypoint does on an empty volume: initdb as POSTGRES_USER with its
    # password, scram for network clients, then CREATE DATABASE POSTGRES_DB.
    run([*as_postgres, str(bindir / "initdb"), "-D", str(pgdata), "-U", pg_env["POSTGRES_USER"],
         f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256"])
    with open(pgdata / "pg_hba.conf", "a") as hba:
        hba.write("host all all all scram-sha-256\n")
    postgres = start("postgres", [*as_postgres, str(bindir / "postgres"), "-D", str(pgdata),
                                  "-c", "listen_addresses=*",
                                  "-c", "unix_socket_directories=/var/run/postgresql"], dict(os.environ))
    shell = lambda cmd, env: lambda timeout: subprocess.run(  # noqa: E731
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
    test = pg["healthcheck"]["test"]
    need(test[0] == "CMD-SHELL", f"postgres healthcheck {test}")
    # `config` keeps compose's escape ($$ for a literal $) that the engine undoes.
    wait_healthy("postgres", shell(["sh", "-c", test[1].replace("$$", "$")], pg_env), pg["healthcheck"], postgres)
    run([*as_postgres, shutil.which("psql") or str(bindir / "psql"), "-h", "/var/run/postgresql", "-U", pg_env["POSTGRES_USER"], "-d", "postgres", "-c",
         f'CREATE DATABASE "{pg_env["POSTGRES_DB"]}"'])

    # ---------------------------------------------------------------- redis
    redis = services["redis"]
    redis_dir = WORK / "redis_data"
    redis_dir.mkdir()
    redis_user = "redis" if user_exists("redis") else "nobody"
    shutil.chown(redis_dir, redis_user)
    redis_proc = start("redis", ["runuser", "-u", redis_user, "--", *redis["command"]],
                       {**os.environ, "PATH": f"{redis_path()}:{os.environ['PATH']}"}, cwd=redis_dir)
    test = redis["healthcheck"]["test"]
    need(test[0] == "CMD", f"redis healthcheck {test}")
    wait_healthy("redis", shell(test[1:], {}), redis["healthcheck"], redis_proc)

    # ---------------------------------------------------------------- app
    app = services["app"]
    uid, gid = (int(x) for x in image["user"].split(":"))
    app_root = WORK / "app-root"
    copy_with_libs(FILEORG, app_root, "/usr/local/bin/fileorg")
    base_root(app_root, "root:x:0:0:root:/root:/sbin/nologin\n"
                        f"nonroot:x:{uid}:{gid}:nonroot:/home/nonroot:/sbin/nologin\n",
              "127.0.0.1 localhost\n127.0.0.1 postgres redis\n")
    data_dir = app_root / "var" / "lib" / "fileorg"
    (data_dir / "storage").mkdir(parents=True)
    for d in (data_dir, data_dir / "storage"):
        os.chown(d, uid, gid)
    (data_dir / "storage").chmod(0o750)
    shutil.copytree(ROOT / "console" / "dist", app_root / console_dest.lstrip("/"))
    need((app_root / console_dest.lstrip("/") / "index.html").is_file(), "console/dist has no index.html")
    volume = WORK / "volumes" / "storage"
    volume.mkdir(parents=True)
    os.chown(volume, uid, gid)
    need(app.get("read_only") is True, "compose app: read_only is not true")
    need(app.get("cap_drop") == ["ALL"], f"compose app: cap_drop {app.get('cap_drop')}")
    need("no-new-privileges:true" in app.get("security_opt", []), "compose app: no-new-privileges")
    seal(app_root)
    mounts = {m["target"]: m for m in app["volumes"]}
    mount("--bind", str(volume), str(app_root / mounts["/var/lib/fileorg/storage"]["target"].lstrip("/")))
    # The container's environment: the image's ENV, then compose's `environment` (which holds
    # env_file's .env too), as docker does; PATH as distroless sets it.
    app_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **image["env"]}
    app_env.update({k: v for k, v in app["environment"].items() if v is not None})
    (ARTIFACTS / "app.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(app_env.items())
                                               if "SECRET" not in k and "DATABASE_URL" not in k))
    enter = in_container(app_root, uid, gid, image["workdir"])
    cmd = image["entrypoint"] + app["command"]
    server = start("app", cmd, app_env, preexec_fn=enter)
    healthcheck = app["healthcheck"]
    need(healthcheck["test"][1:] == image["healthcheck"], "compose's app healthcheck is not the image's")
    wait_healthy("app", lambda timeout: subprocess.run(
        healthcheck["test"][1:], env=app_env, preexec_fn=enter, capture_output=True, text=True,
        timeout=timeout), healthcheck, server)

    # ---------------------------------------------------------------- envoy
    envoy_root = WORK / "envoy-root"
    copy_with_libs(ENVOY, envoy_root, "/usr/local/bin/envoy")
    base_root(envoy_root, "root:x:0:0:root:/root:/sbin/nologin\nenvoy:x:101:101:envoy:/home/envoy:/sbin/nologin\n",
              f"127.0.0.1 localhost\n{envoy_ip} app-upstream\n")
    etc_envoy = envoy_root / "etc" / "envoy"
    etc_envoy.mkdir()
    rendered = envoy_config()
    (etc_envoy / "envoy.yaml").write_text(rendered)
    (ARTIFACTS / "envoy.yaml").write_text(rendered)
    run([str(FILEORG), "descriptor", "--out", str(etc_envoy / "fileorganizer.pb")])
    shutil.copy(ROOT / "sdk" / "openapi" / "openapi.json", etc_envoy / "openapi.json")
    need(services["envoy"].get("read_only") is True, "compose envoy: read_only is not true")
    seal(envoy_root)
    envoy_enter = in_container(envoy_root, 101, 101, "/")
    envoy_env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    run(["/usr/local/bin/envoy", "--mode", "validate", "-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
        env=envoy_env, preexec_fn=envoy_enter)
    envoy = start("envoy", ["/usr/local/bin/envoy", "-c", "/etc/envoy/envoy.yaml"], envoy_env,
                  preexec_fn=envoy_enter)
    http_port = ports["envoy"][8080]
    base = f"http://127.0.0.1:{http_port}"

    def envoy_up(timeout):
        try:
            status, _, body = http("GET", f"{base}/health")
            return subprocess.CompletedProcess([], 0 if status == 200 else 1, body.decode(), "")
        except OSError as e:
            return subprocess.CompletedProcess([], 1, "", str(e))
    # Compose gives envoy no healthcheck: it is up once /health answers through it.
    wait_healthy("envoy", envoy_up, {"interval": "1s", "retries": 30}, envoy, "GET /health answers 200")

    # ---------------------------------------------------------------- through the published ports
    status, _, body = http("GET", f"{base}/health")
    need(status == 200 and json.loads(body).get("status") == "HEALTH_STATE_HEALTHY", f"/health: {status} {body!r}")
    log("GET /health through Envoy: 200, HEALTHY")

    creds = json.dumps({"email": "deploy@example.com", "password": "correct horse battery"}).encode()
    status, _, body = http("POST", f"{base}/api/v1/auth/register", creds, {"content-type": "application/json"})
    need(status == 200, f"REST register: {status} {body!r}")
    status, _, body = http("POST", f"{base}/api/v1/auth/login", creds, {"content-type": "application/json"})
    need(status == 200 and "access_token" in json.loads(body), f"REST login: {status} {body!r}")
    token = json.loads(body)["access_token"]
    auth = {"authorization": f"Bearer {token}"}
    status, _, body = http("GET", f"{base}/api/v1/users/me", headers=auth)
    need(status == 200 and json.loads(body).get("email") == "deploy@example.com", f"users/me: {status} {body!r}")
    log("REST register, login and users/me through Envoy: 200")

    payload = secrets.token_bytes(100_000)
    status, _, body = http("POST", f"{base}/api/v1/files:upload?path=inbox/deploy.bin", payload, auth)
    need(status == 200, f"REST upload: {status} {body!r}")
    status, _, body = http("GET", f"{base}/api/v1/files:download?path=inbox/deploy.bin", headers=auth)
    need(status == 200 and body == payload, f"REST download: {status}, {len(body)} bytes")
    stored = [p for p in volume.rglob("deploy.bin")]
    need(len(stored) == 1 and stored[0].read_bytes() == payload and stored[0].stat().st_uid == uid,
         f"the upload on the storage volume: {stored}")
    log("REST upload and download through Envoy: the bytes are on the storage volume, owned by 65532")

    # A job: the `worker` profile's container (same image, its own command and environment) and
    # the app's in-process workers share the queue and the storage volume; an organize plan and
    # its apply run on the read-only root and move the upload on the volume.
    worker_svc = services["worker"]
    need(worker_svc["command"] == ["worker"], f"compose worker command {worker_svc['command']}")
    worker_env = {"PATH": app_env["PATH"], **image["env"]}
    worker_env.update({k: v for k, v in worker_svc["environment"].items() if v is not None})
    worker = start("worker", image["entrypoint"] + worker_svc["command"], worker_env, preexec_fn=enter)
    op = {"kind": "OPERATION_KIND_ORGANIZE", "source_path": "inbox", "destination_path": "sorted",
          "dry_run": True}
    status, _, body = http("POST", f"{base}/api/v1/operations", json.dumps(op).encode(),
                           {**auth, "content-type": "application/json"})
    need(status == 200, f"CreateOperation: {status} {body!r}")
    name = json.loads(body)["name"]

    def settle(wanted: str) -> dict:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, _, body = http("GET", f"{base}/api/v1/{name}", headers=auth)
            need(status == 200, f"GetOperation: {status} {body!r}")
            operation = json.loads(body)
            if operation["state"] not in ("OPERATION_STATE_QUEUED", "OPERATION_STATE_RUNNING",
                                          "OPERATION_STATE_APPLYING"):
                need(operation["state"] == wanted, f"{name}: {operation}")
                return operation
            time.sleep(0.2)
        fail(f"{name} did not settle within 120 s")

    settle("OPERATION_STATE_PLANNED")
    status, _, body = http("POST", f"{base}/api/v1/{name}:apply", b"{}", {**auth, "content-type": "application/json"})
    need(status == 200, f"apply: {status} {body!r}")
    settle("OPERATION_STATE_SUCCEEDED")
    moved = [p for p in volume.rglob("deploy.bin")]
    need(len(moved) == 1 and "sorted" in moved[0].parts and moved[0].read_bytes() == payload,
         f"after the organize: {moved}")
    need(worker.poll() is None, f"the worker exited ({worker.returncode}): see worker.log")
    log(f"organize plan and apply ({name}) with a worker container running: the file moved on the volume")

    probe = subprocess.run([str(FILEORG), "healthcheck", "--addr", f"127.0.0.1:{http_port}", "--timeout", "3"],
                           capture_output=True, text=True, timeout=30)
    need(probe.returncode == 0, f"gRPC health probe through Envoy: {probe.returncode} {probe.stdout}{probe.stderr}")
    log("grpc.health.v1 probe through Envoy: SERVING")

    # The console and grpc-web from its origin.
    console_port = ports["app"][8081]
    console = f"http://127.0.0.1:{console_port}"
    status, headers, body = http("GET", f"{console}/")
    need(status == 200 and b"<script" in body, f"console /: {status} {body[:200]!r}")
    assets = re.findall(rb'(?:src|href)="\./(assets/[^"]+)"', body)
    need(bool(assets), f"console index names no assets: {body[:300]!r}")
    for asset in assets:
        status, _, _ = http("GET", f"{console}/{asset.decode()}")
        need(status == 200, f"console asset {asset!r}: {status}")
    api_url = app_env["CONSOLE_API_URL"]
    csp = header(headers, "content-security-policy") or ""
    need(f"connect-src 'self' {api_url}" in csp, f"console CSP does not name {api_url}: {csp}")
    status, _, body = http("GET", f"{console}/config.json")
    need(status == 200 and json.loads(body) == {"apiUrl": api_url}, f"config.json: {status} {body!r}")
    log(f"console on :{console_port}: index, {len(assets)} assets, config.json -> {api_url}, CSP names it")
    need(api_url == f"http://localhost:{http_port}", f"CONSOLE_API_URL {api_url} is not Envoy's published port")

    # The console in real Chromium, from the origin compose publishes it on: sign in (grpc-web
    # through Envoy under the console's CSP and the server's CORS) and see the organized folder.
    signed_in = subprocess.run(
        ["node", "tests/deploy/console_sign_in.mjs", f"http://localhost:{console_port}/",
         "deploy@example.com", "correct horse battery", "sorted", str(ARTIFACTS / "console.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    need(signed_in.returncode == 0 and "DONE " in signed_in.stdout,
         f"signing in to the console in Chromium: {signed_in.stdout}{signed_in.stderr}")
    log(f"console in Chromium: signed in and browsed ({signed_in.stdout.split('DONE ', 1)[1].strip()})")

    origins = app_env["CORS_ORIGINS"].split(",")
    origin = f"http://localhost:{console_port}"
    need(origin in origins, f"CORS_ORIGINS {origins} lacks the console's origin {origin}")
    method = "/fileorganizer.v1.SystemService/GetHealth"
    status, headers, _ = http("OPTIONS", f"{base}{method}", headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,x-user-agent"})
    need(status in (200, 204) and header(headers, "access-control-allow-origin") == origin,
         f"grpc-web preflight from {origin}: {status} {headers}")
    grpc_web = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "origin": origin}
    status, headers, body = http("POST", f"{base}{method}", b"\0\0\0\0\0", grpc_web)
    trailers = body[body.rfind(b"\x80"):] if b"\x80" in body else b""
    need(status == 200 and header(headers, "access-control-allow-origin") == origin
         and (header(headers, "grpc-status") == "0" or re.search(rb"grpc-status: ?0\r\n", trailers)),
         f"grpc-web GetHealth from {origin}: {status} {headers} {body!r}")
    status, headers, _ = http("OPTIONS", f"{base}{method}", headers={
        "origin": "http://evil.example", "access-control-request-method": "POST"})
    need(header(headers, "access-control-allow-origin") is None,
         f"a preflight from another origin was allowed: {status} {headers}")
    log(f"grpc-web through Envoy from {origin}: preflight and GetHealth allowed; another origin refused")

    status, _, body = http("GET", f"{base}/api/v1/docs/")
    need(status == 200 and b"swagger" in body.lower(), f"/api/v1/docs/ through Envoy: {status} {body[:200]!r}")
    log("REST docs page through Envoy (from the console listener via app-upstream:8081): 200")

    # Who runs: the image's user with nothing more.
    def status_of(pid: int) -> dict:
        return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if ":\t" in line)
    s = status_of(server.pid)
    need(s["Uid"].split()[0] == str(uid) and s["NoNewPrivs"].strip() == "1" and int(s["CapEff"], 16) == 0,
         f"app runs as {s['Uid']}, NoNewPrivs {s['NoNewPrivs']}, CapEff {s['CapEff']}")
    s = status_of(envoy.pid)
    need(s["Uid"].split()[0] == "101" and int(s["CapEff"], 16) == 0, f"envoy runs as {s['Uid']}")
    try:
        (app_root / "written").write_text("x")
        fail("the app root is writable")
    except OSError:
        pass
    log(f"app runs as {uid} and envoy as 101, no capabilities, no-new-privileges, read-only roots")

    # docker compose stop: SIGTERM, then stop_grace_period before a SIGKILL.
    grace = app.get("stop_grace_period", "10s")
    grace_s = seconds(grace, 10)
    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        fail(f"app did not stop within stop_grace_period ({grace})")
    need(code == 0, f"app exited {code} on SIGTERM")
    log("app stopped on SIGTERM with status 0")
    log("all checks passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        for proc in reversed(PROCS):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(PROCS):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
