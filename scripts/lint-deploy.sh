#!/usr/bin/env bash
# Lints the deployment files without a Docker engine or a cluster; any finding fails.
#
#   Dockerfile ............... hadolint (every rule, style included); the OCI labels of the two
#                              published stages; the Envoy substitutions are the ones checked below
#   .github/workflows/*.yml .. actionlint (with shellcheck on every `run:`), GitHub's workflow schema
#   docker-compose.yml ....... `docker-compose config` (Compose v2) with .env.example and every
#                              profile, the compose-spec schema, and the stack's shape (see below)
#   .env.example ............. names every variable src/config.rs reads, and nothing unknown
#   envoy/envoy.yaml ......... the container variants (compose: upstream `app-upstream`, any source
#                              address; Kubernetes: 127.0.0.1 in the pod, from 127.0.0.2) rendered
#                              with the Dockerfile's substitutions
#                              and loaded by the real Envoy (`--mode validate`) with a descriptor
#                              built from proto/; deploy/k8s/envoy-configmap.yaml must be exactly
#                              the Kubernetes variant
#   deploy/k8s/*.yaml ........ kubernetes-validate --strict (the Kubernetes JSON schemas shipped in
#                              its PyPI package) for Kubernetes 1.30 and 1.37, of each file and of
#                              what `kubectl kustomize deploy/k8s` renders, plus the policy checks
#                              in k8s_policy below on the rendered objects, and k8s_metrics (every
#                              pod scraped; the ServiceMonitor, which has no schema there)
#   deploy/k8s/kustomization.yaml  lists every manifest (prometheus-operator's kinds excepted:
#                              their CRDs may be absent), and its `images:` entry names the image
#                              of every fileorg container (no placeholder left)
#   scripts/lint-deploy.sh ... shellcheck
#
# Usage: scripts/lint-deploy.sh [--update]
#   --update   rewrite deploy/k8s/envoy-configmap.yaml from envoy/envoy.yaml first
#
# The linters are pinned in requirements-dev.txt and installed into .venv by
# scripts/setup-tools.sh (run here; it does nothing when up to date); buf comes from
# node_modules. Idempotent, non-interactive (no stdin), fine as root.
set -euo pipefail
exec </dev/null

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV_DIR="${VENV_DIR:-$ROOT/.venv}"
BIN="$VENV_DIR/bin"

UPDATE=0
case "${1:-}" in
    "") ;;
    --update) UPDATE=1 ;;
    *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

failures=0
step() { printf -- '--- %s\n' "$*"; }
fail() { printf 'lint-deploy: FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
# run NAME CMD...: runs a check, records a failure instead of stopping at the first one.
run() {
    local name="$1"; shift
    step "$name"
    "$@" || fail "$name"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$ROOT/scripts/setup-tools.sh" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
for tool in hadolint actionlint shellcheck docker-compose check-jsonschema kubernetes-validate python; do
    [[ -x "$BIN/$tool" ]] || { echo "lint-deploy: $BIN/$tool missing (requirements-dev.txt)" >&2; exit 1; }
done
# kubectl (for `kubectl kustomize`, no cluster needed): GitHub's runners have it; Debian's
# package is kubernetes-client.
command -v kubectl >/dev/null || { echo "lint-deploy: kubectl missing (kubectl kustomize renders deploy/k8s)" >&2; exit 1; }
ENVOY_BIN="${ENVOY_BIN:-$("$ROOT/scripts/envoy.sh" --path)}"
PY="$BIN/python"

# ------------------------------------------------------------------ Envoy container variants
# The substitutions the Dockerfile's `envoy-config` stage applies (verbatim there, as
# `-e "<expr>"`); ${ENVOY_UPSTREAM_HOST}, ${ENVOY_DESCRIPTOR} and ${ENVOY_OPENAPI} are its build
# args (and ${ENVOY_SOURCE_ADDRESS}). No path relative to the repository may survive: Envoy's cwd in a container is /.
# shellcheck disable=SC2016  # the ${...} are literal text, replaced in render_envoy
ENVOY_SED=(
    's|address: 127.0.0.1, port_value: 8080|address: 0.0.0.0, port_value: 8080|'
    's|address: 127.0.0.1, port_value: 50051|address: ${ENVOY_UPSTREAM_HOST}, port_value: 50051|'
    's|address: 127.0.0.1, port_value: 8081|address: ${ENVOY_UPSTREAM_HOST}, port_value: 8081|'
    's|type: STATIC|type: STRICT_DNS|'
    's|proto_descriptor: envoy/fileorganizer.pb|proto_descriptor: ${ENVOY_DESCRIPTOR}|'
    's|filename: sdk/openapi/openapi.json|filename: ${ENVOY_OPENAPI}|'
    's|source_address: { address: 127.0.0.2|source_address: { address: ${ENVOY_SOURCE_ADDRESS}|'
)
K8S_ENVOY_DESCRIPTOR=/etc/envoy/descriptor/fileorganizer.pb
K8S_ENVOY_OPENAPI=/etc/envoy/config/openapi.json
K8S_CONFIGMAP=deploy/k8s/envoy-configmap.yaml

# render_envoy UPSTREAM_HOST DESCRIPTOR OPENAPI SOURCE_ADDRESS: envoy/envoy.yaml as the images run
# it, on stdout.
render_envoy() {
    local args=() e
    for e in "${ENVOY_SED[@]}"; do
        # shellcheck disable=SC2016  # literal placeholders, not expansions
        e="${e//'${ENVOY_UPSTREAM_HOST}'/$1}"
        # shellcheck disable=SC2016
        e="${e//'${ENVOY_DESCRIPTOR}'/$2}"
        # shellcheck disable=SC2016
        e="${e//'${ENVOY_OPENAPI}'/$3}"
        # shellcheck disable=SC2016
        e="${e//'${ENVOY_SOURCE_ADDRESS}'/$4}"
        args+=(-e "$e")
    done
    sed "${args[@]}" envoy/envoy.yaml
}

write_configmap() {
    cat <<'EOF'
# GENERATED by `scripts/lint-deploy.sh --update` from envoy/envoy.yaml: do not edit by hand.
# The Envoy sidecar's config in the fileorg-api pod: listener on 0.0.0.0:8080, admin on loopback,
# upstream `fileorg serve` on 127.0.0.1:50051 in the same pod, descriptor written by the pod's
# init container (`fileorg descriptor`), and the OpenAPI document it serves (a copy of
# sdk/openapi/openapi.json). scripts/lint-deploy.sh fails when this drifts.
apiVersion: v1
kind: ConfigMap
metadata:
  name: fileorg-envoy
  namespace: fileorganizer
  labels:
    app.kubernetes.io/name: fileorganizer
    app.kubernetes.io/component: api
data:
  envoy.yaml: |
EOF
    render_envoy 127.0.0.1 "$K8S_ENVOY_DESCRIPTOR" "$K8S_ENVOY_OPENAPI" 127.0.0.2 | sed 's/^\(.\)/    \1/'
    echo "  openapi.json: |"
    sed 's/^\(.\)/    \1/' sdk/openapi/openapi.json
}

if [[ "$UPDATE" == 1 ]]; then
    write_configmap >"$K8S_CONFIGMAP"
    echo "lint-deploy: wrote $K8S_CONFIGMAP"
fi

check_envoy_substitutions() {
    local e pattern n ok=0
    for e in "${ENVOY_SED[@]}"; do
        pattern="${e#s|}"; pattern="${pattern%%|*}"
        n="$(grep -cF -- "$pattern" envoy/envoy.yaml || true)"
        [[ "$n" == 1 ]] || { echo "envoy/envoy.yaml: '$pattern' occurs $n times (want exactly 1)"; ok=1; }
        grep -qF -- "-e \"$e\"" Dockerfile || { echo "Dockerfile: missing sed expression -e \"$e\""; ok=1; }
    done
    n="$(grep -cE '^[[:space:]]+-e "s\|' Dockerfile || true)"
    [[ "$n" == "${#ENVOY_SED[@]}" ]] || { echo "Dockerfile: $n sed expressions, lint-deploy.sh knows ${#ENVOY_SED[@]}"; ok=1; }
    return "$ok"
}

validate_envoy() {
    npx --no-install buf build -o "$tmp/fileorganizer.pb" || return 1
    local variant host source
    for variant in compose:app-upstream:0.0.0.0 k8s:127.0.0.1:127.0.0.2; do
        host="${variant#*:}"; source="${host#*:}"; host="${host%%:*}"
        render_envoy "$host" "$tmp/fileorganizer.pb" "$ROOT/sdk/openapi/openapi.json" "$source" >"$tmp/envoy-${variant%%:*}.yaml"
        # One changed line per substitution (in the pod, the upstreams, tonic and the console
        # listener, stay 127.0.0.1 and the source address 127.0.0.2).
        local changed want="${#ENVOY_SED[@]}"
        [[ "$host" == 127.0.0.1 ]] && want=$((want - 2))
        [[ "$source" == 127.0.0.2 ]] && want=$((want - 1))
        changed="$(diff envoy/envoy.yaml "$tmp/envoy-${variant%%:*}.yaml" | grep -c '^>' || true)"
        [[ "$changed" == "$want" ]] || { echo "${variant%%:*} variant changes $changed lines, want $want"; return 1; }
        if grep -nE '(filename|proto_descriptor): [^/{ ]' "$tmp/envoy-${variant%%:*}.yaml" | grep -v '^[0-9]*: *#'; then
            echo "${variant%%:*} variant: a file path is still relative to the repository"; return 1
        fi
        # From another directory, as in a container: a relative path left over would not load.
        (cd "$tmp" && "$ENVOY_BIN" --mode validate -c "envoy-${variant%%:*}.yaml" --log-level warn >/dev/null) \
            || { echo "envoy rejected the ${variant%%:*} variant"; return 1; }
    done
}

check_configmap() {
    write_configmap >"$tmp/envoy-configmap.yaml"
    diff -u "$K8S_CONFIGMAP" "$tmp/envoy-configmap.yaml" >"$tmp/configmap.diff" || {
        head -n 40 "$tmp/configmap.diff"
        echo "$K8S_CONFIGMAP is stale (envoy/envoy.yaml or sdk/openapi/openapi.json changed):"
        echo "run scripts/lint-deploy.sh --update"
        return 1
    }
}

# ------------------------------------------------------------------ .env.example
check_env_example() {
    "$PY" - <<'EOF'
import re, sys
config = open("src/config.rs").read().split("#[cfg(test)]")[0]
# RUST_LOG is read by tracing-subscriber, OTEL_EXPORTER_OTLP_ENDPOINT by src/infra/otel.rs.
wanted = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', config)) | {"RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"}
env = open(".env.example").read()
documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", env, re.M))
compose = open("docker-compose.yml").read()
interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))
bad = [f".env.example does not document {v}" for v in sorted(wanted - documented)]
bad += [f".env.example: {v} is read neither by fileorg nor by docker-compose.yml"
        for v in sorted(documented - wanted - interpolated)]
bad += [f"docker-compose.yml interpolates ${{{v}}}, missing from .env.example"
        for v in sorted(interpolated - documented)]
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# ------------------------------------------------------------------ Kubernetes metrics
# Every process is scraped: each Deployment's pods annotate the container port named `metrics`,
# a Service exposes that port for each, and servicemonitor.yaml (prometheus-operator's kind,
# which kubernetes-validate has no schema for) selects those Services by their port name.
k8s_metrics() {
    "$PY" - deploy/k8s/*.yaml <<'EOF'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
bad = []
def need(cond, msg):
    if not cond:
        bad.append(msg)
deps = [d for d in docs if d["kind"] == "Deployment"]
svcs = [d for d in docs if d["kind"] == "Service"]
monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
need(len(monitors) == 1, f"{len(monitors)} ServiceMonitor(s), want 1 (servicemonitor.yaml)")
for m in monitors:
    need(m["apiVersion"] == "monitoring.coreos.com/v1", f"ServiceMonitor apiVersion {m['apiVersion']}")
    spec = m["spec"]
    need(set(spec) <= {"jobLabel", "selector", "namespaceSelector", "endpoints"}, f"ServiceMonitor spec keys {sorted(spec)}")
    need(spec.get("namespaceSelector", {}).get("matchNames") == [m["metadata"]["namespace"]], "ServiceMonitor namespaceSelector")
    selected = [s for s in svcs if spec["selector"]["matchLabels"].items() <= s["metadata"].get("labels", {}).items()]
    need(spec.get("jobLabel") and all(spec["jobLabel"] in s["metadata"]["labels"] for s in selected),
         "ServiceMonitor jobLabel on every Service")
    for e in spec["endpoints"]:
        need(set(e) <= {"port", "path", "interval", "scrapeTimeout"}, f"ServiceMonitor endpoint keys {sorted(e)}")
        need(e.get("path") == "/metrics", "ServiceMonitor path")
        monitored = {s["metadata"]["name"] for s in selected if any(p["name"] == e["port"] for p in s["spec"]["ports"])}
        for d in deps:
            labels = d["spec"]["template"]["metadata"]["labels"]
            covering = {s["metadata"]["name"] for s in svcs if s["spec"]["selector"].items() <= labels.items()}
            need(covering & monitored, f"{d['metadata']['name']}: no Service with port {e['port']} the ServiceMonitor selects")
for d in deps:
    name, template = d["metadata"]["name"], d["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    a = template["metadata"].get("annotations", {})
    need("metrics" in ports, f"{name}: no container port named metrics")
    need(a.get("prometheus.io/scrape") == "true" and a.get("prometheus.io/path") == "/metrics"
         and a.get("prometheus.io/port") == str(ports.get("metrics")), f"{name}: prometheus.io annotations {a}")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# ------------------------------------------------------------------ compose shape
compose() {
    "$BIN/docker-compose" -f docker-compose.yml --project-directory "$ROOT" \
        --env-file .env.example --profile worker "$@"
}

check_compose_shape() {
    compose config --format json >"$tmp/compose.json" || return 1
    "$PY" - "$tmp/compose.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
s, bad = c["services"], []
def need(cond, msg):
    if not cond:
        bad.append(msg)
need(set(s) == {"postgres", "redis", "app", "worker", "envoy"}, f"services: {sorted(s)}")
published = {n: sorted(p["target"] for p in v.get("ports", [])) for n, v in s.items() if v.get("ports")}
need(published == {"app": [8081, 50051], "envoy": [8080]}, f"published ports: {published}")
# The console: served by app on 8081 (published), calling the API through Envoy's published
# port, from an origin CORS admits.
env = s["app"]["environment"]
host_port = lambda n, t: next(str(p["published"]) for p in s[n]["ports"] if p["target"] == t)
need(env.get("CONSOLE_ADDR") == "0.0.0.0:8081", f"app CONSOLE_ADDR: {env.get('CONSOLE_ADDR')}")
need(env.get("CONSOLE_API_URL") == f"http://localhost:{host_port('envoy', 8080)}",
     f"app CONSOLE_API_URL is Envoy's published port: {env.get('CONSOLE_API_URL')}")
need(f"http://localhost:{host_port('app', 8081)}" in env.get("CORS_ORIGINS", "").split(","),
     f"app CORS_ORIGINS admits the console's origin: {env.get('CORS_ORIGINS')}")
need(s["postgres"]["image"].startswith("postgres:15-alpine"), "postgres image")
need(s["redis"]["image"].startswith("redis:7-alpine"), "redis image")
need("pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"]), "postgres healthcheck")
need(s["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"], "redis healthcheck")
need(s["app"]["command"] == ["serve"] and s["worker"]["command"] == ["worker"], "app/worker commands")
need("fileorg" in " ".join(s["app"]["healthcheck"]["test"]) and "healthcheck" in s["app"]["healthcheck"]["test"], "app healthcheck")
for dep in ("postgres", "redis"):
    need(s["app"]["depends_on"][dep]["condition"] == "service_healthy", f"app waits for healthy {dep}")
need(s["worker"].get("profiles") == ["worker"] and "container_name" not in s["worker"], "worker: profile, scalable")
mounts = lambda n: {(m["source"], m["target"]) for m in s[n].get("volumes", []) if m["type"] == "volume"}
need(("storage", "/var/lib/fileorg/storage") in mounts("app") & mounts("worker"), "storage shared by app and worker")
need(("postgres_data", "/var/lib/postgresql/data") in mounts("postgres"), "postgres_data volume")
need(("redis_data", "/data") in mounts("redis"), "redis_data volume")
need(c["networks"]["backend"].get("internal") is True, "backend network internal")
for n in ("postgres", "redis", "worker"):
    need(list(s[n]["networks"]) == ["backend"], f"{n} only on the internal network")
need(s["app"]["build"]["target"] == "app" and s["envoy"]["build"]["target"] == "envoy", "build targets")
# The server believes forwarded addresses from Envoy's fixed address only (docs/security.md).
envoy_ip = (s["envoy"]["networks"].get("proxy") or {}).get("ipv4_address")
need(envoy_ip is not None and s["app"]["environment"].get("TRUSTED_PROXIES") == envoy_ip,
     f"app trusts exactly Envoy's fixed address on `proxy` ({envoy_ip})")
need(set(s["envoy"]["networks"]) == {"edge", "proxy"} and "proxy" in s["app"]["networks"]
     and all("proxy" not in s[n].get("networks", {}) for n in ("postgres", "redis", "worker")),
     "`proxy` joins only envoy and app")
need(c["networks"]["proxy"].get("internal") is True, "proxy network internal")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# ------------------------------------------------------------------ Dockerfile labels
check_dockerfile_labels() {
    "$PY" - <<'EOF'
import re, sys
stages = re.split(r"^FROM ", open("Dockerfile").read(), flags=re.M)[1:]
bad = []
for name in ("envoy", "app"):
    body = next((s for s in stages if re.match(rf"\S+ AS {name}\n", s)), None)
    if body is None:
        bad.append(f"no stage {name}")
        continue
    for label in ("source", "version", "revision", "title", "licenses"):
        if f"org.opencontainers.image.{label}=" not in body:
            bad.append(f"stage {name}: no org.opencontainers.image.{label} label")
app = next(s for s in stages if re.match(r"\S+ AS app\n", s))
for must in ('USER 65532', 'HEALTHCHECK', '"healthcheck"', 'VOLUME ["/var/lib/fileorg/storage"]',
             'ENTRYPOINT ["/usr/local/bin/fileorg"]', 'CMD ["serve"]'):
    if must not in app:
        bad.append(f"stage app: missing {must}")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# ------------------------------------------------------------------ Kubernetes policy
# k8s_manifests: deploy/k8s/*.yaml, the kustomization excepted.
k8s_manifests() {
    local f
    for f in deploy/k8s/*.yaml; do
        [[ "$f" == deploy/k8s/kustomization.yaml ]] || echo "$f"
    done
}

kustomize_render() {
    kubectl kustomize deploy/k8s >"$tmp/k8s-rendered.yaml"
}

check_kustomization() {
    local manifests
    mapfile -t manifests < <(k8s_manifests)
    "$PY" - "$tmp/k8s-rendered.yaml" "${manifests[@]}" <<'EOF'
import os, sys, yaml
rendered, files = sys.argv[1], sys.argv[2:]
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
bad = []
listed = set(k.get("resources", []))
# prometheus-operator's objects (ServiceMonitor, PrometheusRule, ...) need its CRDs, which a
# cluster may not have: they may stay out of the default set and be applied on their own.
optional = lambda f: all(d.get("apiVersion", "").startswith("monitoring.coreos.com/")
                         for d in yaml.safe_load_all(open(f)) if d)
for f in files:
    name = os.path.basename(f)
    if name not in listed and not optional(f):
        bad.append(f"kustomization.yaml: resources does not list {name}")
images = {i["name"]: i for i in k.get("images", [])}
app = images.get("fileorganizer")
if not app or not app.get("newName") or not (app.get("newTag") or app.get("digest")):
    bad.append("kustomization.yaml: no images entry for `fileorganizer` with newName and newTag/digest")
    app = None
want = None
if app:
    want = app["newName"] + ("@" + app["digest"] if app.get("digest") else ":" + str(app["newTag"]))
for d in (d for d in yaml.safe_load_all(open(rendered)) if d):
    if d["kind"] != "Deployment":
        continue
    pod = d["spec"]["template"]["spec"]
    for c in pod.get("initContainers", []) + pod["containers"]:
        if c["name"] != "envoy" and c["image"] != want:
            bad.append(f"{d['metadata']['name']}/{c['name']}: image {c['image']}, want {want}")
for f in files + ["deploy/k8s/kustomization.yaml"]:
    if "OWNER" in open(f).read():
        bad.append(f"{f}: an OWNER placeholder")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

k8s_policy() {
    "$PY" - "$tmp/k8s-rendered.yaml" <<'EOF'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
by = lambda kind: {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}
bad = []
def need(cond, msg):
    if not cond:
        bad.append(msg)
need(not by("Secret"), "a Secret is committed: reference fileorg-secrets instead")
deps, svcs, pvcs, pdbs = by("Deployment"), by("Service"), by("PersistentVolumeClaim"), by("PodDisruptionBudget")
need(set(deps) == {"fileorg-api", "fileorg-worker"}, f"deployments: {sorted(deps)}")
need(pvcs.get("fileorg-storage", {}).get("spec", {}).get("accessModes") == ["ReadWriteMany"], "storage PVC is ReadWriteMany")
need("fileorg-envoy" in by("ConfigMap"), "ConfigMap fileorg-envoy")
for name, d in deps.items():
    pod = d["spec"]["template"]["spec"]
    labels = d["spec"]["template"]["metadata"]["labels"]
    need(d["spec"]["selector"]["matchLabels"].items() <= labels.items(), f"{name}: selector")
    need(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
    need(any(v.get("persistentVolumeClaim", {}).get("claimName") == "fileorg-storage" for v in pod["volumes"]), f"{name}: mounts fileorg-storage")
    need(any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in pdbs.values()), f"{name}: no PodDisruptionBudget")
    for c in pod.get("initContainers", []) + pod["containers"]:
        cid = f"{name}/{c['name']}"
        for kind in ("requests", "limits"):
            need({"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), f"{cid}: resources.{kind}")
        sc = c.get("securityContext", {})
        need(sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
             and sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cid}: securityContext")
        if "fileorganizer" in c["image"]:
            need(c.get("args", [""])[0] in {"serve", "worker", "descriptor"}, f"{cid}: runs a fileorg command")
        for e in c.get("env", []):
            if e["name"] in {"JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}:
                need("secretKeyRef" in e.get("valueFrom", {}), f"{cid}: {e['name']} inlined")
    for svc in svcs.values():
        if svc["spec"]["selector"].items() <= labels.items():
            ports = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                need(p["targetPort"] in ports, f"service {svc['metadata']['name']}: no container port {p['targetPort']}")
api = deps.get("fileorg-api", {}).get("spec", {}).get("template", {}).get("spec", {})
cs = {c["name"]: c for c in api.get("containers", [])}
need(set(cs) == {"fileorg", "envoy"}, "fileorg-api: fileorg + envoy sidecar")
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    need(cs.get("fileorg", {}).get(probe, {}).get("grpc", {}).get("port") == 50051, f"fileorg-api: {probe} is grpc on 50051")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# ------------------------------------------------------------------ the checks
run "hadolint Dockerfile" "$BIN/hadolint" --no-color --failure-threshold style Dockerfile
run "Dockerfile: OCI labels, user, healthcheck, volume" check_dockerfile_labels
run "shellcheck scripts/lint-deploy.sh" "$BIN/shellcheck" scripts/lint-deploy.sh
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shopt -u nullglob
if ((${#workflows[@]})); then
    run "actionlint .github/workflows" "$BIN/actionlint" -no-color -shellcheck "$BIN/shellcheck" -pyflakes "" "${workflows[@]}"
    run "GitHub workflow schema" "$BIN/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
else
    fail "no workflow under .github/workflows"
fi
run "docker-compose config (Compose v2, profile worker)" compose config -q
run "compose-spec schema" "$BIN/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
run "docker-compose.yml: services, ports, volumes, networks" check_compose_shape
run ".env.example documents every variable" check_env_example
run "deploy/k8s metrics: annotations, Services, ServiceMonitor" k8s_metrics
run "Envoy substitutions (envoy/envoy.yaml <-> Dockerfile)" check_envoy_substitutions
run "Envoy container variants load (envoy --mode validate)" validate_envoy
run "$K8S_CONFIGMAP is the rendered variant" check_configmap
run "kubectl kustomize deploy/k8s" kustomize_render
mapfile -t k8s_files < <(k8s_manifests)
for k in 1.30.0 1.37.0; do
    run "kubernetes-validate --strict (Kubernetes $k)" "$BIN/kubernetes-validate" --strict --quiet -k "$k" \
        "${k8s_files[@]}" "$tmp/k8s-rendered.yaml"
done
run "deploy/k8s/kustomization.yaml (every manifest, the images entry)" check_kustomization
run "deploy/k8s policy on the rendered objects (probes, resources, secrets, storage, PDBs)" k8s_policy

if ((failures)); then
    echo "lint-deploy: $failures check(s) failed" >&2
    exit 1
fi
echo "lint-deploy: all deployment checks passed"
