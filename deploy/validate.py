"""Checks every Kubernetes manifest under deploy/kubernetes/ (called by deploy/validate.sh).

For each directory with a kustomization.yaml:
  * every file it lists exists, and every YAML file beside it is listed (nothing is
    silently left out of `kubectl apply -k`);
  * it is rendered with `kubectl kustomize` (kubectl's built-in kustomize, offline) when
    kubectl is installed, else its listed files are read as they are;
  * each object is validated against the Kubernetes OpenAPI schemas bundled in the PyPI
    package kubernetes-validate, in strict mode (an unknown field fails), for each version
    in K8S_VERSIONS; a kind without a schema fails too (the CLI would only warn);
  * the External Secrets Operator objects (CRDs, no bundled schema) are checked against
    CRD_SHAPES below: our own description of the fields these examples use, written from
    the operator's API documentation, not the operator's CRD schema;
  * policy: credproxy containers run as non-root with a read-only root filesystem, no
    capabilities, probes on the admin port; no `subPath` mount anywhere; each Secret a pod
    uses is made in the same directory (or by an ExternalSecret there);
  * every embedded example sources.yaml is written out for `credproxy check`: Secret data
    (secretGenerator files included), the ExternalSecret template and the Vault Agent
    template (both rendered with placeholder values); a credproxy that listens beyond
    loopback must have `callers:` whose hashes are of documented example tokens (or that
    are JWT callers, which hold no secret).

Usage: python3 validate.py DEPLOY_DIR OUT_DIR
Writes OUT_DIR/sources-N.yaml and OUT_DIR/sources.list ("path<TAB>what" per line); exits
non-zero on the first kind of problem found, after printing every problem.
"""

import base64
import hashlib
import json
import ipaddress
import os
import re
import shutil
import subprocess
import sys

import yaml
from kubernetes_validate import utils as kv

# The oldest Kubernetes these manifests support (native sidecars are on by default from
# 1.29, the preStop sleep action from 1.30) and the newest the package ships.
K8S_VERSIONS = ["1.30.0", "1.37.0"]

CREDPROXY_IMAGE = "credproxy"  # the image name the manifests use; kustomize rewrites it
ADMIN_PORT = 9090

# Shapes of the CRD objects used here: a dict is an object whose keys must be among its
# keys ("?" suffix: optional), a list holds the shape of its items, a type is a leaf, a
# set is an enum, a compiled regex a string pattern. Unknown fields fail, as in strict
# mode. This checks only what the examples use; the operator may accept more.
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
METADATA = {"name": str, "namespace?": str, "labels?": dict, "annotations?": dict}
CRD_SHAPES = {
    ("external-secrets.io/v1", "SecretStore"): {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "provider": {
                "vault": {
                    "server": re.compile(r"^https?://"),
                    "path?": str,
                    "version?": {"v1", "v2"},
                    "namespace?": str,
                    "auth": {
                        "kubernetes": {
                            "mountPath": str,
                            "role": str,
                            "serviceAccountRef?": {"name": str, "audiences?": [str]},
                        },
                    },
                },
            },
        },
    },
    ("external-secrets.io/v1", "ExternalSecret"): {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "refreshInterval?": DURATION,
            "refreshPolicy?": {"CreatedOnce", "Periodic", "OnChange"},
            "secretStoreRef": {"name": str, "kind?": {"SecretStore", "ClusterSecretStore"}},
            "target": {
                "name?": str,
                "creationPolicy?": {"Owner", "Orphan", "Merge", "None"},
                "deletionPolicy?": {"Delete", "Merge", "Retain"},
                "immutable?": bool,
                "template?": {
                    "engineVersion?": {"v2"},
                    "type?": str,
                    "metadata?": {"labels?": dict, "annotations?": dict},
                    "data?": dict,
                },
            },
            "data?": [
                {
                    "secretKey": str,
                    "remoteRef": {"key": str, "property?": str, "version?": str},
                }
            ],
        },
    },
}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def check_shape(value, shape, path, where):
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return problem(where, f"{path}: expected an object")
        keys = {k.rstrip("?"): k.endswith("?") for k in shape}
        for key in value:
            if key not in keys:
                problem(where, f"{path}.{key}: unknown field")
        for key, optional in keys.items():
            if key in value:
                sub = shape[key + "?" if optional else key]
                check_shape(value[key], sub, f"{path}.{key}", where)
            elif not optional:
                problem(where, f"{path}.{key}: required")
    elif isinstance(shape, list):
        if not isinstance(value, list) or not value:
            return problem(where, f"{path}: expected a non-empty list")
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{path}[{i}]", where)
    elif isinstance(shape, set):
        if value not in shape:
            problem(where, f"{path}: {value!r} is not one of {sorted(shape)}")
    elif isinstance(shape, re.Pattern):
        if not isinstance(value, str) or not shape.search(value):
            problem(where, f"{path}: {value!r} does not match {shape.pattern}")
    elif not isinstance(value, shape):
        problem(where, f"{path}: expected {shape.__name__}, got {type(value).__name__}")


def load_all(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def kustomization_dirs(root):
    for dirpath, _, files in sorted(os.walk(root)):
        if "kustomization.yaml" in files:
            yield dirpath


def check_listing(directory, kustomization):
    """Listed files exist; every YAML file in the directory is listed."""
    listed = set(kustomization.get("resources", []))
    listed |= {patch["path"] for patch in kustomization.get("patches", []) if "path" in patch}
    for generator in kustomization.get("secretGenerator", []) + kustomization.get(
        "configMapGenerator", []
    ):
        for entry in generator.get("files", []):
            listed.add(entry.split("=", 1)[-1])
    for name in sorted(listed):
        if not os.path.exists(os.path.join(directory, name)):
            problem(directory, f"kustomization.yaml lists {name}, which does not exist")
    for name in sorted(os.listdir(directory)):
        if name.endswith((".yaml", ".yml")) and name != "kustomization.yaml":
            if name not in listed:
                problem(directory, f"{name} is not listed in kustomization.yaml")


def render(directory, kustomization):
    if shutil.which("kubectl"):
        out = subprocess.run(
            ["kubectl", "kustomize", directory], capture_output=True, text=True
        )
        if out.returncode != 0:
            problem(directory, f"kubectl kustomize failed: {out.stderr.strip()}")
            return []
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    # Without kubectl: the listed files as they are, plus the generated Secrets.
    docs = []
    for name in kustomization.get("resources", []):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            # A base: its objects, without this overlay's patches (only kubectl applies them).
            docs += render(path, load_all(os.path.join(path, "kustomization.yaml"))[0])
        else:
            docs += load_all(path)
    for generator in kustomization.get("secretGenerator", []):
        data = {}
        for entry in generator.get("files", []):
            key, _, name = entry.rpartition("=")
            with open(os.path.join(directory, name)) as f:
                data[key or os.path.basename(name)] = f.read()
        for entry in generator.get("literals", []):
            key, _, value = entry.partition("=")
            data[key] = value
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": generator["name"]},
                "type": "Opaque",
                "stringData": data,
            }
        )
    return docs


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def validate_schema(doc, where):
    shape = CRD_SHAPES.get((doc.get("apiVersion"), doc.get("kind")))
    if shape is not None:
        check_shape(doc, shape, name_of(doc), where)
        return
    for version in K8S_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problem(where, f"{name_of(doc)} (Kubernetes {version}): {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            problem(where, f"{name_of(doc)}: {e.message}")


def pod_spec(doc):
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]
    if doc.get("kind") == "Pod":
        return doc
    return None


def is_credproxy(container):
    image = container.get("image", "")
    return image == CREDPROXY_IMAGE or image.split(":")[0].endswith("/" + CREDPROXY_IMAGE)


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def check_policy(docs, where):
    """The hardening and wiring the issue asks for, kept from regressing."""
    made_secrets = {d["metadata"]["name"] for d in docs if d.get("kind") == "Secret"}
    made_secrets |= {
        d["spec"]["target"].get("name", d["metadata"]["name"])
        for d in docs
        if d.get("kind") == "ExternalSecret"
    }
    for doc in docs:
        template = pod_spec(doc)
        if template is None:
            continue
        spec = template["spec"]
        label = name_of(doc)
        containers = spec.get("initContainers", []) + spec.get("containers", [])
        for c in containers:
            for mount in c.get("volumeMounts", []):
                if "subPath" in mount or "subPathExpr" in mount:
                    problem(where, f"{label} {c['name']}: subPath mounts never see updates")
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in made_secrets:
                    problem(where, f"{label} {c['name']}: Secret {ref['name']} is not made here")
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if secret and secret["secretName"] not in made_secrets:
                problem(where, f"{label}: Secret {secret['secretName']} is not made here")
        for c in containers:
            if not is_credproxy(c):
                continue
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot") or spec.get("securityContext", {}).get("runAsNonRoot")):
                problem(where, f"{label} credproxy: runAsNonRoot is not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                problem(where, f"{label} credproxy: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problem(where, f"{label} credproxy: allowPrivilegeEscalation is not false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problem(where, f"{label} credproxy: capabilities are not dropped (ALL)")
            if not c.get("resources", {}).get("limits", {}).get("memory"):
                problem(where, f"{label} credproxy: no memory limit")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if ports.get(port, port) != ADMIN_PORT:
                    problem(where, f"{label} credproxy: {probe} is not on the admin port")
            admin = env_of(c).get("CREDPROXY_ADMIN_LISTEN", "")
            if not admin.startswith("0.0.0.0:"):
                problem(where, f"{label} credproxy: kubelet probes need CREDPROXY_ADMIN_LISTEN=0.0.0.0:…")
            if c in spec.get("initContainers", []) and c.get("restartPolicy") != "Always":
                problem(where, f"{label} credproxy: an init container without restartPolicy Always")


def listens_beyond_loopback(container):
    listen = env_of(container).get("CREDPROXY_LISTEN") or "127.0.0.1:8080"
    args = container.get("args", [])
    if "--listen" in args:
        listen = args[args.index("--listen") + 1]
    host = listen.rsplit(":", 1)[0].strip("[]")
    loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    return not loopback and "--allow-unauthenticated" not in args


# Go-template actions in the ESO and Vault Agent examples: `{{ .key | toJson }}` and
# `{{ .Data.data.key | toJSON }}` become a quoted placeholder; `with`/`end` vanish; the
# `-` trim markers eat the whitespace beside them, as in Go.
ACTION = re.compile(r"(\s*)\{\{(-?)\s*(.*?)\s*(-?)\}\}(\s*)", re.S)
VALUE = re.compile(r"^\.(?:Data\.data\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*(?:toJson|toJSON)$")


def render_go_template(text, where):
    def action(m):
        before, trim_left, body, trim_right, after = m.groups()
        before = "" if trim_left else before
        after = "" if trim_right else after
        value = VALUE.match(body)
        if value:
            return f'{before}"placeholder-{value.group(1)}"{after}'
        if re.match(r"^(with|end|if|else)\b", body):
            return before + after
        problem(where, f"template action {{{{ {body} }}}} is not one CI knows how to render")
        return before + after

    return ACTION.sub(action, text)


def example_tokens(root):
    """Documented example caller tokens (cpt_EXAMPLE_…) anywhere under deploy/."""
    tokens = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith((".yaml", ".yml", ".md")):
                with open(os.path.join(dirpath, name)) as f:
                    tokens |= set(re.findall(r"cpt_EXAMPLE_[A-Za-z0-9_]+", f.read()))
    return {hashlib.sha256(t.encode()).hexdigest(): t for t in tokens}


def check_callers(text, where, known):
    config = yaml.safe_load(text)
    callers = config.get("callers")
    if not callers:
        problem(where, "credproxy listens beyond loopback, but sources.yaml has no callers:")
        return
    for name, caller in callers.items():
        if "jwt" in caller:
            # A JWT caller holds no secret: an issuer, an audience and where its keys are.
            jwks = caller["jwt"].get("jwks_url", "")
            if jwks and not jwks.startswith("https://"):
                problem(where, f"callers.{name}.jwt.jwks_url must be https in an example")
            continue
        if caller.get("token_sha256") not in known:
            problem(
                where,
                f"callers.{name}.token_sha256 is not the hash of a documented "
                "cpt_EXAMPLE_… token: examples must never carry a real caller's hash",
            )


def main():
    deploy, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    known_tokens = example_tokens(deploy)
    examples = []  # (text, what)
    renderer = "kubectl kustomize" if shutil.which("kubectl") else "the listed files (no kubectl)"
    print(f"rendered by {renderer}; validated by kubernetes-validate {kv.__version__} "
          f"(strict) against Kubernetes {', '.join(K8S_VERSIONS)}")

    for directory in kustomization_dirs(os.path.join(deploy, "kubernetes")):
        where = os.path.relpath(directory)
        kustomization = load_all(os.path.join(directory, "kustomization.yaml"))[0]
        check_listing(directory, kustomization)
        docs = render(directory, kustomization)
        for doc in docs:
            validate_schema(doc, where)
        check_policy(docs, where)

        needs_callers = any(
            listens_beyond_loopback(c)
            for doc in docs
            if pod_spec(doc)
            for c in pod_spec(doc)["spec"].get("initContainers", [])
            + pod_spec(doc)["spec"].get("containers", [])
            if is_credproxy(c)
        )
        found = []
        for doc in docs:
            if doc.get("kind") in ("Secret", "ConfigMap"):
                for key, value in (doc.get("stringData") or {}).items():
                    if key == "sources.yaml":
                        found.append((value, f"{where}: {name_of(doc)}"))
                for key, value in (doc.get("data") or {}).items():
                    if key == "sources.yaml":
                        text = value if doc["kind"] == "ConfigMap" else base64.b64decode(value).decode()
                        found.append((text, f"{where}: {name_of(doc)}"))
            if doc.get("kind") == "ExternalSecret":
                data = doc["spec"]["target"].get("template", {}).get("data", {})
                if "sources.yaml" in data:
                    text = render_go_template(data["sources.yaml"], where)
                    found.append((text, f"{where}: {name_of(doc)} template"))
            template = pod_spec(doc)
            if template:
                annotations = template.get("metadata", {}).get("annotations", {})
                for key, value in annotations.items():
                    if key.startswith("vault.hashicorp.com/agent-inject-template-"):
                        text = render_go_template(value, where)
                        found.append((text, f"{where}: {name_of(doc)} {key}"))
        for text, what in found:
            if needs_callers:
                check_callers(text, what, known_tokens)
        examples += found
        print(f"  {where}: {len(docs)} objects; {len(found)} sources.yaml")

    if shutil.which("kubectl"):
        # The documented `kubectl create secret` line, as a client-side dry run.
        where = "kubectl create secret"
        sidecar = os.path.join(deploy, "kubernetes", "sidecar", "sources.yaml")
        out = subprocess.run(
            ["kubectl", "create", "secret", "generic", "credproxy-sources",
             f"--from-file=sources.yaml={sidecar}", "--dry-run=client", "-o", "yaml"],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            problem(where, out.stderr.strip())
        else:
            secret = yaml.safe_load(out.stdout)
            validate_schema(secret, where)
            text = base64.b64decode(secret["data"]["sources.yaml"]).decode()
            examples.append((text, f"{where}: Secret/credproxy-sources"))
            print(f"  {where}: 1 object; 1 sources.yaml")

    with open(os.path.join(out_dir, "sources.list"), "w") as listing:
        for i, (text, what) in enumerate(examples):
            path = os.path.join(out_dir, f"sources-{i}.yaml")
            with open(path, "w") as f:
                f.write(with_stand_ins(text, out_dir, i, what))
            listing.write(f"{path}\t{what}\n")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} problem(s) in the manifests", file=sys.stderr)
        sys.exit(1)


# `{ file: /abs/path }` references an example makes to files the pod mounts (a projected
# token, a key from a Secret): `credproxy check` reads them, so CI writes stand-ins of the
# right kind and points the copy it checks at them. A private key must parse, so it is a
# fresh one made by node:crypto (node is installed for the interop tests).
STAND_IN_KINDS = {
    "oauth2_client_private_key": "ec-key",
    "github_private_key": "rsa-key",
    "google_service_account_key": "google-key",
}


NODE_KEYS = {
    "ec": "generateKeyPairSync('ec', { namedCurve: 'P-256' })",
    "rsa": "generateKeyPairSync('rsa', { modulusLength: 2048 })",
}


def node_key(kind):
    script = (
        "const { generateKeyPairSync } = require('node:crypto');"
        "const pair = " + NODE_KEYS[kind] + ";"
        "process.stdout.write(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));"
    )
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True)
    if out.returncode != 0:
        problem("stand-ins", f"node could not make a key: {out.stderr.strip()}")
        return ""
    return out.stdout


def stand_in_ca():
    """A throwaway self-signed certificate, for `jwks_ca_file`."""
    out = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/CN=stand-in", "-days", "1", "-keyout", "/dev/null"],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        problem("stand-ins", f"openssl could not make a certificate: {out.stderr.strip()}")
        return ""
    return out.stdout


def with_stand_ins(text, out_dir, index, what):
    data = yaml.safe_load(text) or {}
    replacements = {}
    # A JWT caller's CA file, mounted in the pod (the cluster's CA).
    for name, caller in (data.get("callers") or {}).items():
        path = ((caller or {}).get("jwt") or {}).get("jwks_ca_file")
        if not path or not os.path.isabs(path) or os.path.exists(path) or path in replacements:
            continue
        stand_in = os.path.join(out_dir, "files", f"{index}-{name}-jwks_ca_file")
        os.makedirs(os.path.dirname(stand_in), exist_ok=True)
        with open(stand_in, "w") as f:
            f.write(stand_in_ca())
        replacements[path] = stand_in
        print(f"    {what}: callers.{name}.jwt.jwks_ca_file reads a stand-in for {path}")
    for source_id, source in (data.get("sources") or {}).items():
        for field, value in (source or {}).items():
            if not (isinstance(value, dict) and set(value) == {"file"}):
                continue
            path = value["file"]
            if not os.path.isabs(path) or os.path.exists(path):
                continue
            kind = STAND_IN_KINDS.get(field, "token")
            stand_in = os.path.join(out_dir, "files", f"{index}-{source_id}-{field}")
            os.makedirs(os.path.dirname(stand_in), exist_ok=True)
            if kind == "google-key":
                content = json.dumps({
                    "type": "service_account",
                    "client_email": "stand-in@example.iam.gserviceaccount.com",
                    "private_key": node_key("rsa"),
                    "private_key_id": "stand-in",
                    "token_uri": "https://oauth2.googleapis.com/token",
                })
            elif kind.endswith("-key"):
                content = node_key(kind.split("-")[0])
            else:
                content = "stand-in-token-for-credproxy-check\n"
            with open(stand_in, "w") as f:
                f.write(content)
            replacements[path] = stand_in
            print(f"    {what}: {source_id}.{field} reads a stand-in for {path}")
    for path, stand_in in replacements.items():
        text = text.replace(path, stand_in)
    return text


if __name__ == "__main__":
    main()
