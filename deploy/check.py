#!/usr/bin/env python3
"""Validates deploy/ without a container engine: YAML structure, settings, Dockerfile shape.

Every variable set in compose or the ConfigMap/Secret must be one Stowage documents in
.env.example, and nginx's body limit must cover MAX_UPLOAD_BYTES plus multipart framing.
`nginx -t` on nginx.conf is run by check.sh beside this file.
"""
import pathlib
import re
import sys

import yaml

here = pathlib.Path(__file__).resolve().parent
root = here.parent
errors = []


def check(condition, message):
    if not condition:
        errors.append(message)


documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (root / ".env.example").read_text(), re.M))
check(len(documented) > 20, ".env.example lists the configuration")

compose = yaml.safe_load((here / "docker-compose.yml").read_text())
services = compose.get("services", {})
for name in ["stowage-1", "stowage-2", "nginx", "postgres", "redis",
             "seaweedfs-master", "seaweedfs-volume", "seaweedfs-filer"]:
    check(name in services, f"compose: service {name} is missing")
for name in ["stowage-1", "stowage-2"]:
    service = services.get(name, {})
    env = service.get("environment", {})
    check(service.get("build", {}).get("dockerfile") == "deploy/Dockerfile", f"compose: {name} builds deploy/Dockerfile")
    check(env.get("STORAGE_BACKEND") == "s3", f"compose: {name} stores blobs in S3")
    check(str(env.get("DATABASE_URL", "")).startswith("postgres://"), f"compose: {name} uses Postgres")
    check("REDIS_URL" in env, f"compose: {name} uses Redis")
    for key in env:
        check(key in documented, f"compose: {name} sets {key}, which .env.example does not document")
filer = " ".join(services.get("seaweedfs-filer", {}).get("command", []))
check("-s3" in filer, "compose: the SeaweedFS filer runs its S3 gateway")
check("./nginx.conf:/etc/nginx/nginx.conf:ro" in services.get("nginx", {}).get("volumes", []),
      "compose: nginx mounts deploy/nginx.conf")

max_upload = int(services.get("stowage-1", {}).get("environment", {}).get("MAX_UPLOAD_BYTES", 104857600))
nginx = (here / "nginx.conf").read_text()
body = re.search(r"client_max_body_size\s+(\d+)([kmg]?);", nginx)
check(body is not None, "nginx: client_max_body_size is set")
if body:
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[body.group(2)]
    check(int(body.group(1)) * factor >= max_upload + 64 * 1024,
          "nginx: client_max_body_size covers MAX_UPLOAD_BYTES plus 64 KiB of framing")
for directive in ["proxy_request_buffering off;", "proxy_buffering off;", "X-Real-IP $remote_addr"]:
    check(directive in nginx, f"nginx: `{directive}` is missing")
for replica in ["stowage-1:8080", "stowage-2:8080"]:
    check(replica in nginx, f"nginx: upstream {replica} is missing")

kinds = {}
for path in sorted((here / "k8s").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        check(isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc, f"{path.name}: not a manifest")
        kinds[doc["kind"]] = doc
for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret"]:
    check(kind in kinds, f"k8s: no {kind}")
container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
check(container["livenessProbe"]["httpGet"]["path"] == "/health/live", "k8s: liveness probes /health/live")
check(container["readinessProbe"]["httpGet"]["path"] == "/health/ready", "k8s: readiness probes /health/ready")
check("limits" in container.get("resources", {}), "k8s: resource limits are set")
check(kinds["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], "k8s: runs as non-root")
check(kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"],
      "k8s: the autoscaler targets the Deployment")
for kind, section in [("ConfigMap", "data"), ("Secret", "stringData")]:
    for key in kinds[kind].get(section, {}):
        check(key in documented, f"k8s: {kind} sets {key}, which .env.example does not document")
grace = int(kinds["ConfigMap"]["data"].get("SHUTDOWN_GRACE_SECONDS", 30))
check(kinds["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace,
      "k8s: terminationGracePeriodSeconds exceeds SHUTDOWN_GRACE_SECONDS")

dockerfile = (here / "Dockerfile").read_text()
check(len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2, "Dockerfile: multi-stage")
check(re.search(r"^USER (?!0|root)", dockerfile, re.M) is not None, "Dockerfile: runs as a non-root user")
check("HEALTHCHECK" in dockerfile and "healthcheck" in dockerfile, "Dockerfile: has a health check")

# Pneumatic's own file-service definition with only the image changed: every variable it sets is
# one Stowage reads (its own name, or a Pneumatic name it falls back to), or one it knowingly
# ignores (uvicorn workers, the Python service's chunk size; TLS is in the endpoint's scheme).
PNEUMATIC_NAMES = {
    "DJANGO_SECRET_KEY", "AUTH_REDIS_URL", "KEY_PREFIX_REDIS", "POSTGRES_USER", "POSTGRES_PASSWORD",
    "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "STORAGE_TYPE", "SEAWEEDFS_S3_ENDPOINT",
    "SEAWEEDFS_S3_ACCESS_KEY", "SEAWEEDFS_S3_SECRET_KEY", "SEAWEEDFS_S3_REGION", "GCS_S3_ENDPOINT",
    "GCS_S3_ACCESS_KEY", "GCS_S3_SECRET_KEY", "GCS_S3_REGION", "BUCKET_PREFIX", "FASTAPI_BASE_URL",
    "BACKEND_PRIVATE_URL", "MAX_FILE_SIZE", "PORT", "CONFIG", "FORMS_URL",
}
IGNORED = {"WORKERS", "CHUNK_SIZE", "SEAWEEDFS_S3_USE_SSL"}
pneumatic = yaml.safe_load((here / "pneumatic" / "docker-compose.yml").read_text())
file_service = pneumatic.get("services", {}).get("file-service", {})
check(file_service.get("build", {}).get("dockerfile") == "deploy/Dockerfile",
      "pneumatic compose: file-service builds deploy/Dockerfile")
for key in file_service.get("environment", {}):
    check(key in documented or key in PNEUMATIC_NAMES or key in IGNORED,
          f"pneumatic compose: file-service sets {key}, which Stowage neither reads nor ignores knowingly")
check("poetry run alembic" in file_service.get("command", "") and "poetry run uvicorn" in file_service.get("command", ""),
      "pneumatic compose: file-service keeps Pneumatic's start command")
check("deploy/pneumatic/poetry" in dockerfile and "deploy/pneumatic/entrypoint" in dockerfile,
      "Dockerfile: ships the entrypoint and the poetry stand-in")

if errors:
    print("deploy/ check failed:", *errors, sep="\n  ")
    sys.exit(1)
print(f"deploy/ check passed: {len(services)} compose services, {len(kinds)} Kubernetes kinds")
