#!/usr/bin/env python3
"""check_packaging.py — the checks behind scripts/check-packaging.sh.

    check_packaging.py static ROOT [--staged-rootfs DIR]
        Dockerfiles, docker/compose.yaml, every YAML file, and the Helm
        chart's templates read without rendering them.
    check_packaging.py manifests ROOT VARIANT RENDERED.yaml CONFIGCHECK
        One rendered chart: every Pod Security Standards rule of the
        restricted profile (and the baseline rules it includes), one check
        per rule, plus the chart's own promises (probes, ports, drain,
        ConfigMap loadable by the relay's parser through CONFIGCHECK).
    check_packaging.py api-manifests ROOT VARIANT RENDERED.yaml ZGATE-API
        One rendered zgate-api chart: the same restricted-profile rules,
        HTTPS probes, the database only from a Secret, and the ConfigMap
        through ZGATE-API --check-config.
    check_packaging.py connector-manifests ROOT VARIANT RENDERED.yaml ZGATE-CONNECTOR
        One rendered zgate-connector chart: the same restricted-profile
        rules, HTTP probes on the ops port, every file the configuration
        names mounted, no Service (it dials out), and the ConfigMap through
        ZGATE-CONNECTOR --check-config when that binary exists.
    check_packaging.py selftest RENDERED.yaml
        Breaks a good rendered Deployment one rule at a time and requires
        the restricted-profile checks to catch each breakage (so that no
        rule check passes vacuously).
    check_packaging.py policy-api-selftest RENDERED.yaml
        Breaks a good policyApi render (ci/policy-api-values.yaml) one way
        at a time (read-only or missing policy volume, policy back under
        /etc/zgate, no policy_api, ...) and requires the policy_api check
        to catch each.

Prints "ok   NAME" or "FAIL NAME: why" per check; exits 1 if any failed.
Needs PyYAML.
"""
import copy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

RESULTS = {"ok": 0, "fail": 0}


def report(name, ok, why=""):
    if ok:
        RESULTS["ok"] += 1
        print(f"ok   {name}")
    else:
        RESULTS["fail"] += 1
        print(f"FAIL {name}: {why}")
    return ok


def check(name, fn):
    """Runs fn(); it returns None (pass) or a string (why it failed)."""
    try:
        why = fn()
    except Exception as e:  # a check that crashes has failed
        why = f"{type(e).__name__}: {e}"
    return report(name, why is None, why or "")


# ---------------------------------------------------------------- Dockerfiles

class Dockerfile:
    """Instructions of a Dockerfile: (keyword, args text, line number),
    continuation lines joined, comments dropped, grouped into stages."""

    def __init__(self, path):
        self.path = path
        self.instructions = []
        buf, start = "", 0
        with open(path) as f:
            for n, line in enumerate(f, 1):
                s = line.rstrip("\n")
                if not buf and (not s.strip() or s.lstrip().startswith("#")):
                    continue
                if buf and s.lstrip().startswith("#"):
                    continue  # comment inside a continued instruction
                if not buf:
                    start = n
                if s.endswith("\\"):
                    buf += s[:-1] + " "
                    continue
                buf += s
                kw, _, rest = buf.strip().partition(" ")
                self.instructions.append((kw.upper(), rest.strip(), start))
                buf = ""
        self.stages = []  # each: {"from": image, "name": name, "ins": [...]}
        for ins in self.instructions:
            if ins[0] == "FROM":
                parts = [p for p in ins[1].split() if not p.startswith("--")]
                name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else None
                self.stages.append({"from": parts[0], "name": name, "ins": []})
            elif self.stages:
                self.stages[-1]["ins"].append(ins)

    @staticmethod
    def copy_args(args):
        """COPY/ADD args → (flags dict, sources, dest)."""
        flags = {}
        words = args.split()
        while words and words[0].startswith("--"):
            k, _, v = words.pop(0)[2:].partition("=")
            flags[k] = v
        rest = " ".join(words)
        if rest.startswith("["):
            items = json.loads(rest)
        else:
            items = rest.split()
        return flags, items[:-1], items[-1]

    def final(self):
        return self.stages[-1]

    def user_of(self, stage):
        users = [a for k, a, _ in stage["ins"] if k == "USER"]
        return users[-1] if users else None


def uid_is_root(user):
    if user is None:
        return True
    name = user.split(":")[0]
    return name in ("0", "root")


def image_has_registry_host(image):
    first = image.split("/")[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


EXPOSED = {"relay": {"4433/udp", "8080/tcp"}, "api": {"8443/tcp"}, "connector": {"9201/tcp"}}


def check_dockerfile(root, rel, kind, staged_rootfs=None):
    path = os.path.join(root, rel)
    df = Dockerfile(path)
    tag = f"dockerfile {rel}:"

    def multi_stage():
        if kind == "certgen":
            return None if len(df.stages) >= 1 else "no FROM"
        if len(df.stages) < 2:
            return f"{len(df.stages)} stage(s); expected a build stage and a runtime stage"
        if not df.stages[0]["from"].startswith("debian:12"):
            return f"build stage is FROM {df.stages[0]['from']}, expected Debian 12"
        return None
    check(f"{tag} multi-stage, built on Debian 12", multi_stage)

    def no_registry_hosts():
        bad = [s["from"] for s in df.stages if image_has_registry_host(s["from"])]
        return f"base images name a registry host: {bad}" if bad else None
    check(f"{tag} base images name no registry host", no_registry_hosts)

    def sources_exist():
        missing = []
        for st in df.stages:
            for k, a, n in st["ins"]:
                if k not in ("COPY", "ADD"):
                    continue
                flags, srcs, _ = Dockerfile.copy_args(a)
                if "from" in flags:
                    continue
                for s in srcs:
                    if re.match(r"^[a-z]+://", s):
                        missing.append(f"line {n}: {s} (remote source)")
                    elif not glob.glob(os.path.join(root, s)):
                        missing.append(f"line {n}: {s}")
        return f"missing COPY/ADD sources: {missing}" if missing else None
    check(f"{tag} every COPY/ADD source exists in the repository", sources_exist)

    def from_stages_known():
        bad, seen = [], set()
        for i, st in enumerate(df.stages):
            for k, a, n in st["ins"]:
                if k in ("COPY", "ADD"):
                    flags, _, _ = Dockerfile.copy_args(a)
                    f = flags.get("from")
                    if f is not None and f not in seen and not f.isdigit():
                        bad.append(f"line {n}: --from={f}")
            if st["name"]:
                seen.add(st["name"])
        return f"COPY --from names no earlier stage: {bad}" if bad else None
    check(f"{tag} COPY --from names an earlier stage", from_stages_known)

    def final_user():
        u = df.user_of(df.final())
        if uid_is_root(u):
            return f"final stage runs as {u or 'root (no USER)'}"
        uid = u.split(":")[0]
        if kind in ("relay", "agent", "api", "connector") and uid not in ("65532", "65534"):
            return f"USER {u}: expected 65532 or 65534"
        return None
    check(f"{tag} final image runs as a non-root USER", final_user)

    def exec_entrypoint():
        eps = [a for k, a, _ in df.final()["ins"] if k == "ENTRYPOINT"]
        if not eps:
            return "no ENTRYPOINT"
        try:
            v = json.loads(eps[-1])
        except ValueError:
            return f"ENTRYPOINT {eps[-1]} is not exec form (needs a shell)"
        return None if isinstance(v, list) else "ENTRYPOINT is not a JSON list"
    check(f"{tag} ENTRYPOINT in exec form (no shell)", exec_entrypoint)

    def nothing_downloaded():
        bad = [f"line {n}" for st in df.stages for k, a, n in st["ins"]
               if k == "RUN" and re.search(r"\b(curl|wget)\b", a)]
        return f"RUN downloads with curl/wget: {bad}" if bad else None
    check(f"{tag} no curl/wget: packages come through apt and make only", nothing_downloaded)

    if kind in ("relay", "agent", "api", "connector"):
        def builds_like_ci():
            runs = " ; ".join(a for k, a, _ in df.stages[0]["ins"] if k == "RUN")
            if not re.search(r"\bmake deps\b", runs) or not re.search(r"\bmake all\b", runs):
                return "the build stage does not run `make deps` and `make all`"
            return None
        check(f"{tag} build stage runs the Makefile (make deps, make all) as CI does", builds_like_ci)

    if kind in ("relay", "api", "connector"):
        fin = df.final()
        binary = "zgate-" + kind

        def stages_binary():
            runs = " ; ".join(a for k, a, _ in df.stages[0]["ins"] if k == "RUN")
            eps = [json.loads(a) for k, a, _ in fin["ins"] if k == "ENTRYPOINT"]
            why = []
            if not re.search(r"docker/rootfs\.sh /out build/bin/" + binary + r"\b", runs):
                why.append(f"the build stage does not stage build/bin/{binary} with docker/rootfs.sh")
            if not eps or eps[-1][:1] != [f"/usr/local/bin/{binary}"]:
                why.append(f"ENTRYPOINT {eps[-1] if eps else None} is not /usr/local/bin/{binary}")
            return "; ".join(why) or None
        check(f"{tag} stages {binary} with docker/rootfs.sh and runs it", stages_binary)

        def scratch():
            if fin["from"] != "scratch":
                return f"final stage FROM {fin['from']}: expected scratch (binary + libraries only)"
            runs = [n for k, _, n in fin["ins"] if k == "RUN"]
            return f"RUN in a scratch stage (lines {runs})" if runs else None
        check(f"{tag} runtime stage is FROM scratch: no shell, no package manager", scratch)

        def exposes():
            ports = set(" ".join(a for k, a, _ in fin["ins"] if k == "EXPOSE").split())
            want = EXPOSED[kind]
            return None if want <= ports else f"EXPOSE {sorted(ports)}; expected {sorted(want)}"
        check(f"{tag} exposes {' and '.join(sorted(EXPOSED[kind]))}", exposes)
        if kind == "connector":
            def no_inbound_service():
                ports = set(" ".join(a for k, a, _ in fin["ins"] if k == "EXPOSE").split())
                return f"EXPOSE {sorted(ports)}: the connector dials out; only its ops port" \
                    if ports - EXPOSED[kind] else None
            check(f"{tag} exposes nothing but the ops port (the connector dials out)", no_inbound_service)

        def staged_sources():
            if not staged_rootfs:
                return None
            missing = []
            for k, a, n in fin["ins"]:
                if k != "COPY":
                    continue
                flags, srcs, _ = Dockerfile.copy_args(a)
                for s in srcs:
                    if flags.get("from") == "build" and s.startswith("/out"):
                        if not os.path.exists(staged_rootfs + s[len("/out"):]):
                            missing.append(f"line {n}: {s}")
            return f"not in the staged root file system: {missing}" if missing else None
        if staged_rootfs:
            check(f"{tag} COPY --from=build sources exist in the rootfs.sh output", staged_sources)

    if kind == "agent":
        def file_capability():
            runs = " ".join(a for k, a, _ in df.final()["ins"] if k == "RUN")
            if "setcap cap_net_admin=ep" not in runs:
                return "the final stage does not give the agent CAP_NET_ADMIN as a file capability"
            return None
        check(f"{tag} agent gets exactly CAP_NET_ADMIN (file capability), runs non-root", file_capability)

    def never_privileged():
        text = open(path).read()
        return "mentions --privileged as a way to run" if re.search(r"^\s*[^#\s].*--privileged", text, re.M) else None
    check(f"{tag} never asks for --privileged", never_privileged)
    return df


# ---------------------------------------------------------------- compose

def parse_duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text).strip())
    if not m:
        raise ValueError(f"not a duration: {text}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def check_compose(root):
    rel = "docker/compose.yaml"
    base = os.path.join(root, "docker")
    doc = yaml.safe_load(open(os.path.join(root, rel)))
    svcs = doc.get("services", {})
    tag = f"compose {rel}:"

    def sysctls_of(s):
        v = s.get("sysctls", {})
        if isinstance(v, list):
            return dict(x.split("=", 1) for x in v)
        return v

    def built_from(name):
        return [n for n, s in svcs.items()
                if str((s.get("build") or {}).get("dockerfile", "")).endswith(name)]
    relays = built_from("relay.Dockerfile")
    apis = built_from("api.Dockerfile")

    def services_present():
        agents = built_from("agent.Dockerfile")
        missing = [n for n in ("certgen", "target", "postgres") if n not in svcs]
        why = [f"missing services {missing}"] if missing else []
        if len(relays) < 2:
            why.append(f"relay services {relays}; expected two sharing the pool")
        if len(apis) != 1:
            why.append(f"zgate-api services {apis}; expected one")
        if len(agents) < 2:
            why.append(f"{len(agents)} agent services; expected two")
        return "; ".join(why) or None
    check(f"{tag} two relays, zgate-api, postgres, two agents, a target and certgen", services_present)

    def locked_down(name, s, want_ro=True):
        why = []
        if s.get("cap_drop") != ["ALL"]:
            why.append(f"{name}: cap_drop {s.get('cap_drop')}")
        if s.get("cap_add"):
            why.append(f"{name}: cap_add {s.get('cap_add')}")
        if want_ro and s.get("read_only") is not True:
            why.append(f"{name}: read_only not true")
        if "no-new-privileges:true" not in s.get("security_opt", []):
            why.append(f"{name}: no no-new-privileges:true")
        if s.get("privileged"):
            why.append(f"{name}: privileged")
        if uid_is_root(str(s.get("user", "root"))):
            why.append(f"{name}: user {s.get('user')}")
        return why

    def relay_locked_down():
        return "; ".join(w for n in relays for w in locked_down(n, svcs[n])) or None
    check(f"{tag} relays: cap_drop ALL, no cap_add, read_only, no-new-privileges, non-root", relay_locked_down)

    def api_locked_down():
        why = [w for n in apis + ["postgres"] if n in svcs for w in locked_down(n, svcs[n])]
        for n in apis:
            if str(svcs[n].get("user", "")).split(":")[0] != "65532":
                why.append(f"{n}: user {svcs[n].get('user')}, not the image's 65532")
        return "; ".join(why) or None
    check(f"{tag} zgate-api and postgres: cap_drop ALL, no cap_add, read_only, no-new-privileges, non-root",
          api_locked_down)

    def relay_sysctl():
        why = []
        for n in relays:
            r = svcs[n]
            v = sysctls_of(r).get("net.ipv4.ping_group_range")
            if v is None:
                why.append(f"{n}: no net.ipv4.ping_group_range")
                continue
            lo, hi = (int(x) for x in str(v).split())
            gid = int(str(r.get("user", "0:0")).split(":")[-1])
            if not lo <= gid <= hi:
                why.append(f"{n}: range {v} excludes the relay's gid {gid}")
        return "; ".join(why) or None
    check(f"{tag} relays: ping_group_range sysctl includes their gid", relay_sysctl)

    def relay_ports():
        why, published = [], []
        for n in relays:
            ports = [str(p) for p in svcs[n].get("ports", [])]
            quic = [p for p in ports if p.endswith(":4433/udp")]
            if not quic:
                why.append(f"{n}: ports {ports}: no 4433/udp")
            published += [p.rsplit(":", 1)[0] for p in ports]
        dup = sorted({p for p in published if published.count(p) > 1})
        if dup:
            why.append(f"host ports published twice: {dup}")
        return "; ".join(why) or None
    check(f"{tag} relays publish 4433/udp, on distinct host ports", relay_ports)

    def relay_stop_grace():
        cfg = yaml.safe_load(open(os.path.join(root, "examples/zgate-relay.yaml")))
        drain = parse_duration_s(cfg.get("timeouts", {}).get("drain_grace", "30s"))
        why = []
        for n in relays:
            grace = parse_duration_s(svcs[n].get("stop_grace_period", "10s"))
            if grace <= drain:
                why.append(f"{n}: stop_grace_period {grace}s <= drain_grace {drain}s")
        return "; ".join(why) or None
    check(f"{tag} relays: stop_grace_period exceeds their drain period", relay_stop_grace)

    certgen_cmd = [str(x) for x in (svcs.get("certgen", {}).get("command") or [])]

    def certgen_makes(opt, value):
        return any(a == opt and b == value for a, b in zip(certgen_cmd, certgen_cmd[1:]))

    def relays_use_api():
        why, ids = [], []
        api_host = apis[0] if apis else "?"
        for n in relays:
            env = {k: str(v) for k, v in (svcs[n].get("environment") or {}).items()}
            rid = env.get("ZGATE_RELAY_ID", "")
            ids.append(rid)
            if env.get("ZGATE_IPAM_BACKEND") != "api":
                why.append(f"{n}: ZGATE_IPAM_BACKEND {env.get('ZGATE_IPAM_BACKEND')!r}, not api")
            url = env.get("ZGATE_IPAM_API_URL", "")
            if not re.fullmatch(r"https://" + re.escape(api_host) + r":8443/?", url):
                why.append(f"{n}: ZGATE_IPAM_API_URL {url!r} is not https://{api_host}:8443")
            if not rid:
                why.append(f"{n}: no ZGATE_RELAY_ID")
            for k, suf in (("ZGATE_IPAM_API_CERT", ".crt"), ("ZGATE_IPAM_API_KEY", ".key")):
                if env.get(k) != f"/etc/zgate/tls/relay-{rid}{suf}":
                    why.append(f"{n}: {k} {env.get(k)!r}, not certgen's relay-{rid}{suf} (CN relay:{rid})")
            if env.get("ZGATE_IPAM_API_CA") != "/etc/zgate/tls/ca.crt":
                why.append(f"{n}: ZGATE_IPAM_API_CA {env.get('ZGATE_IPAM_API_CA')!r}")
            if rid and not certgen_makes("--api-relay", rid):
                why.append(f"{n}: certgen makes no --api-relay {rid}")
        if len(set(ids)) != len(ids):
            why.append(f"relay ids {ids} are not distinct (zgate-api tells relays apart by them)")
        if apis and not certgen_makes("--api", apis[0]):
            why.append(f"certgen makes no zgate-api server certificate for {apis[0]!r} (--api {apis[0]})")
        return "; ".join(why) or None
    check(f"{tag} relays: ipam backend api at zgate-api, each with its own relay:ID client certificate",
          relays_use_api)

    def api_wiring():
        why = []
        for n in apis:
            a = svcs[n]
            dep = a.get("depends_on") or {}
            if (dep.get("postgres") or {}).get("condition") != "service_healthy":
                why.append(f"{n}: does not wait for postgres to be healthy")
            if (dep.get("certgen") or {}).get("condition") != "service_completed_successfully":
                why.append(f"{n}: does not wait for certgen")
            env = {k: str(v) for k, v in (a.get("environment") or {}).items()}
            if "ZGATE_DATABASE" in env:
                why.append(f"{n}: ZGATE_DATABASE written in compose.yaml: take it from an env file or secret")
            files = a.get("env_file") or []
            files = [files] if isinstance(files, str) else files
            if not any("ZGATE_DATABASE=" in open(os.path.join(base, f)).read()
                       for f in files if os.path.exists(os.path.join(base, f))):
                why.append(f"{n}: no env_file sets ZGATE_DATABASE")
            nets = set(a.get("networks") or [])
            for r in relays:
                if not nets & set(svcs[r].get("networks") or []):
                    why.append(f"{n} and {r} share no network")
        pnets = set(svcs.get("postgres", {}).get("networks") or [])
        for name, net in (doc.get("networks") or {}).items():
            if name in pnets and not (net or {}).get("internal"):
                why.append(f"postgres is on the non-internal network {name}")
        return "; ".join(why) or None
    check(f"{tag} zgate-api waits for postgres and certgen, takes the database from an env file, "
          f"reaches postgres on an internal network", api_wiring)

    def agents_know_every_relay():
        why = []
        for n in built_from("agent.Dockerfile"):
            env = {k: str(v) for k, v in (svcs[n].get("environment") or {}).items()}
            listed = [e.split("@")[-1].rsplit(":", 1)[0] for e in env.get("ZGATE_RELAY", "").split(",") if e]
            if sorted(listed) != sorted(relays):
                why.append(f"{n}: ZGATE_RELAY {env.get('ZGATE_RELAY')!r} does not list every relay {relays}")
        return "; ".join(why) or None
    check(f"{tag} agents list every relay (--relay r1:4433,r2:4433)", agents_know_every_relay)

    def agents_minimal():
        why = []
        for n, s in svcs.items():
            if not str((s.get("build") or {}).get("dockerfile", "")).endswith("agent.Dockerfile"):
                continue
            if s.get("cap_drop") != ["ALL"] or s.get("cap_add") != ["NET_ADMIN"]:
                why.append(f"{n}: cap_drop {s.get('cap_drop')} cap_add {s.get('cap_add')}")
            if not any(str(d).startswith("/dev/net/tun") for d in s.get("devices", [])):
                why.append(f"{n}: no /dev/net/tun device")
            if s.get("privileged"):
                why.append(f"{n}: privileged")
            if uid_is_root(str(s.get("user", "root"))):
                why.append(f"{n}: user {s.get('user')}")
        return "; ".join(why) or None
    check(f"{tag} agents: only NET_ADMIN and /dev/net/tun, non-root, never privileged", agents_minimal)

    def nobody_privileged():
        why = []
        for n, s in svcs.items():
            if s.get("privileged"):
                why.append(f"{n}: privileged")
            for k in ("network_mode", "pid", "ipc"):
                if str(s.get(k, "")) == "host":
                    why.append(f"{n}: {k} host")
            if "ALL" not in (s.get("cap_drop") or []):
                why.append(f"{n}: does not drop ALL capabilities")
        return "; ".join(why) or None
    check(f"{tag} no service is privileged, shares host namespaces or keeps default capabilities", nobody_privileged)

    def certgen_once():
        cg = svcs.get("certgen", {})
        df = os.path.join(root, (cg.get("build") or {}).get("dockerfile", "-"))
        if not os.path.exists(df) or "scripts/gen-certs.sh" not in open(df).read():
            return "certgen does not build from a Dockerfile that runs scripts/gen-certs.sh"
        late = [n for n in relays + apis
                if ((svcs[n].get("depends_on") or {}).get("certgen") or {}).get("condition")
                != "service_completed_successfully"]
        return f"{late} do not wait for certgen to complete" if late else None
    check(f"{tag} one-shot certificate generation with scripts/gen-certs.sh before the relays and zgate-api", certgen_once)

    def paths_exist():
        missing = []
        for n, s in svcs.items():
            b = s.get("build")
            if b:
                ctx = os.path.normpath(os.path.join(base, b.get("context", ".")))
                if not os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))):
                    missing.append(f"{n}: dockerfile {b.get('dockerfile')}")
            for v in s.get("volumes", []):
                src = str(v).split(":")[0]
                if src.startswith(".") and not os.path.exists(os.path.join(base, src)):
                    missing.append(f"{n}: {src}")
            ef = s.get("env_file") or []
            for f in [ef] if isinstance(ef, str) else ef:
                if not os.path.exists(os.path.join(base, f)):
                    missing.append(f"{n}: env_file {f}")
        return f"missing: {missing}" if missing else None
    check(f"{tag} build files, bind-mounted files and env files exist", paths_exist)


def check_compose_connector(root):
    """The on-prem part of docker/compose.yaml (issue 22): a connector
    locked down like the relays, an internal "onprem" network that only the
    connector and the on-prem servers join, the connector's certificate
    from certgen, and the relays' policy binding its prefixes."""
    rel = "docker/compose.yaml"
    base = os.path.join(root, "docker")
    doc = yaml.safe_load(open(os.path.join(root, rel)))
    svcs = doc.get("services", {})
    nets = doc.get("networks", {}) or {}
    tag = f"compose {rel}:"

    def dockerfile_of(s):
        return str((s.get("build") or {}).get("dockerfile", ""))
    conns = [n for n, s in svcs.items() if dockerfile_of(s).endswith("connector.Dockerfile")]
    zgate = [n for n, s in svcs.items() if dockerfile_of(s) and n not in conns]

    def nets_of(s):
        v = s.get("networks") or []
        return list(v) if isinstance(v, (list, dict)) else []

    def conf_of(n):
        for v in svcs[n].get("volumes", []):
            src, _, dst = str(v).partition(":")
            if dst.split(":")[0] == "/etc/zgate/zgate-connector.yaml":
                return yaml.safe_load(open(os.path.join(base, src)))
        return None

    def present():
        return None if len(conns) == 1 else f"connector services {conns}; expected one"
    check(f"{tag} one zgate-connector service (docker/connector.Dockerfile)", present)
    if len(conns) != 1:
        return
    cn = conns[0]
    c = svcs[cn]
    cfg = conf_of(cn) or {}

    def locked_down():
        why = []
        if c.get("cap_drop") != ["ALL"] or c.get("cap_add"):
            why.append(f"cap_drop {c.get('cap_drop')} cap_add {c.get('cap_add')}")
        if c.get("read_only") is not True:
            why.append("read_only not true")
        if "no-new-privileges:true" not in c.get("security_opt", []):
            why.append("no no-new-privileges:true")
        if str(c.get("user", "")).split(":")[0] != "65532":
            why.append(f"user {c.get('user')}, not the image's 65532")
        if c.get("devices") or c.get("privileged"):
            why.append("devices or privileged")
        return "; ".join(why) or None
    check(f"{tag} {cn}: cap_drop ALL, no cap_add, no device, read_only, no-new-privileges, uid 65532", locked_down)

    def onprem_isolated():
        why = []
        onprem = [n for n in nets_of(c) if n != "edge"]
        if not onprem:
            return f"{cn} joins no on-prem network besides edge: {nets_of(c)}"
        for net in onprem:
            if not (nets.get(net) or {}).get("internal"):
                why.append(f"network {net} is not internal")
            members = [n for n, s in svcs.items() if net in nets_of(s)]
            bad = [n for n in members if n != cn and n in zgate]
            if bad:
                why.append(f"{bad} (agents/relays/zgate-api) join the on-prem network {net}")
            if not [n for n in members if n != cn]:
                why.append(f"no on-prem server on {net}")
        return "; ".join(why) or None
    check(f"{tag} the on-prem network is internal and joined only by {cn} and on-prem servers", onprem_isolated)

    def dials_relays():
        relays = [n for n, s in svcs.items() if dockerfile_of(s).endswith("relay.Dockerfile")]
        listed = sorted(str(r).rsplit(":", 1)[0] for r in cfg.get("relays", []))
        why = []
        if listed != sorted(relays):
            why.append(f"relays {cfg.get('relays')} do not list every relay {relays}")
        if not set(nets_of(c)) & {m for r in relays for m in nets_of(svcs[r])}:
            why.append(f"{cn} shares no network with the relays")
        return "; ".join(why) or None
    check(f"{tag} {cn} dials every relay over a network it shares with them", dials_relays)

    def certificates():
        cmd = [str(x) for x in svcs.get("certgen", {}).get("command", [])]
        ids = [cmd[i + 1] for i, x in enumerate(cmd[:-1]) if x == "--connector"]
        why = []
        cert = str(cfg.get("cert", ""))
        m = re.fullmatch(r"/etc/zgate/tls/connector-([A-Za-z0-9._-]{1,63})\.crt", cert)
        if not m:
            why.append(f"cert {cert!r} is not a certgen connector certificate")
        elif m.group(1) not in ids:
            why.append(f"certgen makes connectors {ids}, not {m.group(1)}")
        if ((c.get("depends_on") or {}).get("certgen") or {}).get("condition") != "service_completed_successfully":
            why.append("does not wait for certgen")
        return "; ".join(why) or None
    check(f"{tag} {cn}'s certificate (CN connector:ID) comes from certgen (--connector ID)", certificates)

    def policy_binds():
        cert = str(cfg.get("cert", ""))
        cid = re.sub(r"^.*/connector-(.*)\.crt$", r"\1", cert)
        pol = yaml.safe_load(open(os.path.join(base, "policy.yaml")))
        bound = ((pol.get("connectors") or {}).get(cid) or {}).get("prefixes") or []
        why = []
        if not cfg.get("prefixes"):
            why.append("the connector serves no prefixes")
        if sorted(map(str, cfg.get("prefixes") or [])) != sorted(map(str, bound)):
            why.append(f"serves {cfg.get('prefixes')}, docker/policy.yaml binds {bound} to {cid}")
        users = [n for n, cl in (pol.get("clients") or {}).items()
                 if any(r.get("connector") == cid for r in (cl or {}).get("rules", []))]
        if not users:
            why.append(f"no client has a rule `connector: {cid}`")
        subnets = [str(cfg_["subnet"]) for net in nets_of(c) if net != "edge"
                   for cfg_ in (((nets.get(net) or {}).get("ipam") or {}).get("config") or [])]
        if subnets and sorted(subnets) != sorted(map(str, cfg.get("prefixes") or [])):
            why.append(f"serves {cfg.get('prefixes')}, the on-prem network is {subnets}")
        return "; ".join(why) or None
    check(f"{tag} the relays' policy binds the connector's prefixes (the on-prem subnet) and lets a client reach it",
          policy_binds)


# ---------------------------------------------------------------- YAML

def check_yaml_files(root):
    files = sorted(set(glob.glob(os.path.join(root, "docker/*.yaml")) +
                       glob.glob(os.path.join(root, "examples/*.yaml")) +
                       glob.glob(os.path.join(root, "helm/*/Chart.yaml")) +
                       glob.glob(os.path.join(root, "helm/*/values.yaml")) +
                       glob.glob(os.path.join(root, "helm/*/ci/*.yaml"))))
    for f in files:
        rel = os.path.relpath(f, root)

        def parse(f=f):
            docs = list(yaml.safe_load_all(open(f)))
            return None if docs and docs[0] is not None else "empty document"
        check(f"yaml {rel} parses", parse)
    for f in sorted(glob.glob(os.path.join(root, "helm/*/values.schema.json"))):
        check(f"json {os.path.relpath(f, root)} parses", lambda f=f: json.load(open(f)) and None)


# ---------------------------------------------------------------- chart, unrendered

RESTRICTED_LITERALS = [
    ("runAsNonRoot: true", 2),          # pod and container
    ("allowPrivilegeEscalation: false", 1),
    ("readOnlyRootFilesystem: true", 1),
    ("privileged: false", 1),
    ('drop: ["ALL"]', 1),
    ("type: RuntimeDefault", 2),         # seccomp, pod and container
    ("name: net.ipv4.ping_group_range", 1),
]


def conditional_depth_by_line(text):
    """For each line, how many if/with/range blocks enclose it."""
    depth, out, pos = 0, [], 0
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    actions = [(m.start(), m.group(1)) for m in re.finditer(r"\{\{-?\s*(if|with|range|define|block|end)\b", text)]
    ai = 0
    for i, start in enumerate(line_starts):
        end = line_starts[i + 1] if i + 1 < len(line_starts) else len(text)
        d_at_start = depth
        while ai < len(actions) and actions[ai][0] < end:
            depth += -1 if actions[ai][1] == "end" else 1
            ai += 1
        out.append(d_at_start)
    return out


def check_chart_static(root, name="zgate-relay", dockerfile="docker/relay.Dockerfile"):
    chart = os.path.join(root, "helm", name)
    tag = "chart (unrendered):" if name == "zgate-relay" else f"chart {name} (unrendered):"
    literals = RESTRICTED_LITERALS if name == "zgate-relay" else \
        [x for x in RESTRICTED_LITERALS if "ping_group_range" not in x[0]]
    meta = yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))
    values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))

    def chart_yaml():
        why = []
        if meta.get("apiVersion") != "v2":
            why.append(f"apiVersion {meta.get('apiVersion')}")
        if meta.get("name") != name:
            why.append(f"name {meta.get('name')}")
        if not re.fullmatch(r"\d+\.\d+\.\d+([-+].*)?", str(meta.get("version", ""))):
            why.append(f"version {meta.get('version')} is not SemVer")
        if not meta.get("kubeVersion"):
            why.append("no kubeVersion")
        return "; ".join(why) or None
    check(f"{tag} Chart.yaml is a v2 chart with a SemVer version and kubeVersion", chart_yaml)

    dep_path = os.path.join(chart, "templates/deployment.yaml")
    dep = open(dep_path).read()
    depth = conditional_depth_by_line(dep)
    lines = dep.split("\n")
    for lit, count in literals:
        def literal(lit=lit, count=count):
            where = [i for i, l in enumerate(lines) if l.strip() == lit or l.strip() == "- " + lit]
            fixed = [i for i in where if depth[i] == 0]
            if len(fixed) < count:
                return (f"found {len(where)} time(s), {len(fixed)} outside if/with/range; "
                        f"expected {count} unconditional")
            return None
        check(f"{tag} deployment.yaml has `{lit}` unconditionally (x{count})", literal)

    def no_passthrough():
        bad = []
        for f in glob.glob(os.path.join(chart, "templates/*")):
            t = open(f).read()
            for pat in (r"toYaml\s+\.Values\.(pod)?[sS]ecurityContext", r"\.Values\.containerSecurityContext",
                        r"\.Values\.podSecurityContext", r"hostNetwork|hostPID|hostIPC|hostPath|hostPort",
                        r"privileged:\s*true", r"procMount", r"Unconfined"):
                if re.search(pat, t):
                    bad.append(f"{os.path.basename(f)}: /{pat}/")
        return f"templates let values override the security context or use host features: {bad}" if bad else None
    check(f"{tag} no template passes a security context through from values or uses host features", no_passthrough)

    def ids_match_image():
        sc = values.get("securityContext", {})
        df = Dockerfile(os.path.join(root, dockerfile))
        user = df.user_of(df.final()) or ""
        uid, _, gid = user.partition(":")
        why = []
        for k in ("runAsUser", "runAsGroup", "fsGroup"):
            if not isinstance(sc.get(k), int) or sc.get(k) <= 0:
                why.append(f"securityContext.{k} = {sc.get(k)}")
        if str(sc.get("runAsUser")) != uid or (gid and str(sc.get("runAsGroup")) != gid):
            why.append(f"values run as {sc.get('runAsUser')}:{sc.get('runAsGroup')}, the image as {user}")
        return "; ".join(why) or None
    check(f"{tag} values' uid/gid are non-zero and match the image's USER ({dockerfile})", ids_match_image)

    def drain_defaults():
        d, t = values.get("drainGraceSeconds"), values.get("terminationGracePeriodSeconds")
        return None if isinstance(d, int) and isinstance(t, int) and t > d else f"terminationGracePeriodSeconds {t} vs drainGraceSeconds {d}"
    if name == "zgate-relay":
        check(f"{tag} default terminationGracePeriodSeconds exceeds drainGraceSeconds", drain_defaults)

    def readme():
        p = os.path.join(chart, "README.md")
        if not os.path.exists(p):
            return "no README.md"
        t = open(p).read()
        missing = [w for w in ("helm install", "helm upgrade", "helm uninstall", "gen-certs.sh", "restricted")
                   if w not in t]
        return f"README.md does not cover {missing}" if missing else None
    check(f"{tag} README.md covers install, upgrade, uninstall, certificates and the restricted profile", readme)


# ---------------------------------------------------------------- rendered manifests

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def containers_of(spec):
    return ([("container", c) for c in spec.get("containers", [])] +
            [("initContainer", c) for c in spec.get("initContainers", [])] +
            [("ephemeralContainer", c) for c in spec.get("ephemeralContainers", [])])


def pod_templates(docs):
    out = []
    for d in docs:
        k = d.get("kind")
        if k == "Pod":
            out.append((f"Pod/{d['metadata']['name']}", d.get("metadata", {}), d["spec"]))
        elif k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            t = d["spec"]["template"]
            out.append((f"{k}/{d['metadata']['name']}", t.get("metadata", {}), t["spec"]))
        elif k == "CronJob":
            t = d["spec"]["jobTemplate"]["spec"]["template"]
            out.append((f"{k}/{d['metadata']['name']}", t.get("metadata", {}), t["spec"]))
    return out


# Each rule: (id, text, fn(meta, spec) → None or why). Together they are the
# Pod Security Standards "restricted" profile, which includes "baseline".
def _r_host_namespaces(meta, spec):
    bad = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return f"{bad} set" if bad else None


def _r_host_process(meta, spec):
    bad = []
    for scope, sc in [("pod", spec.get("securityContext") or {})] + \
            [(c["name"], c.get("securityContext") or {}) for _, c in containers_of(spec)]:
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            bad.append(scope)
    return f"hostProcess in {bad}" if bad else None


def _r_privileged(meta, spec):
    bad = [c["name"] for _, c in containers_of(spec) if (c.get("securityContext") or {}).get("privileged")]
    return f"privileged: {bad}" if bad else None


def _r_baseline_caps(meta, spec):
    bad = []
    for _, c in containers_of(spec):
        add = ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
        bad += [f"{c['name']}:{a}" for a in add if a not in BASELINE_CAPS]
    return f"capabilities added beyond the baseline set: {bad}" if bad else None


def _r_host_path(meta, spec):
    bad = [v["name"] for v in spec.get("volumes", []) if "hostPath" in v]
    return f"hostPath volumes {bad}" if bad else None


def _r_host_ports(meta, spec):
    bad = [f"{c['name']}:{p.get('hostPort')}" for _, c in containers_of(spec)
           for p in c.get("ports", []) if p.get("hostPort")]
    return f"hostPort {bad}" if bad else None


def _r_apparmor(meta, spec):
    bad = []
    for k, v in (meta.get("annotations") or {}).items():
        if k.startswith("container.apparmor.security.beta.kubernetes.io/") and \
                v != "runtime/default" and not str(v).startswith("localhost/"):
            bad.append(f"{k}={v}")
    for scope, sc in [("pod", spec.get("securityContext") or {})] + \
            [(c["name"], c.get("securityContext") or {}) for _, c in containers_of(spec)]:
        t = (sc.get("appArmorProfile") or {}).get("type")
        if t not in (None, "RuntimeDefault", "Localhost"):
            bad.append(f"{scope}: {t}")
    return f"AppArmor {bad}" if bad else None


def _r_selinux(meta, spec):
    bad = []
    for scope, sc in [("pod", spec.get("securityContext") or {})] + \
            [(c["name"], c.get("securityContext") or {}) for _, c in containers_of(spec)]:
        o = sc.get("seLinuxOptions") or {}
        if o.get("type", "") not in SELINUX_TYPES or o.get("user") or o.get("role"):
            bad.append(f"{scope}: {o}")
    return f"seLinuxOptions {bad}" if bad else None


def _r_proc_mount(meta, spec):
    bad = [c["name"] for _, c in containers_of(spec)
           if (c.get("securityContext") or {}).get("procMount", "Default") != "Default"]
    return f"procMount {bad}" if bad else None


def _r_sysctls(meta, spec):
    bad = [s["name"] for s in (spec.get("securityContext") or {}).get("sysctls", [])
           if s["name"] not in SAFE_SYSCTLS]
    return f"unsafe sysctls {bad}" if bad else None


def _r_volume_types(meta, spec):
    bad = []
    for v in spec.get("volumes", []):
        kinds = [k for k in v if k != "name"]
        if not kinds or any(k not in ALLOWED_VOLUMES for k in kinds):
            bad.append(f"{v['name']}:{kinds}")
    return f"volume types outside the restricted list: {bad}" if bad else None


def _r_privilege_escalation(meta, spec):
    bad = [c["name"] for _, c in containers_of(spec)
           if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False]
    return f"allowPrivilegeEscalation is not false in {bad}" if bad else None


def _r_run_as_non_root(meta, spec):
    pod = (spec.get("securityContext") or {}).get("runAsNonRoot")
    bad = []
    for _, c in containers_of(spec):
        v = (c.get("securityContext") or {}).get("runAsNonRoot")
        if v is False or (v is None and pod is not True):
            bad.append(c["name"])
    if pod is False:
        bad.append("pod")
    return f"runAsNonRoot not true for {bad}" if bad else None


def _r_run_as_user(meta, spec):
    bad = []
    if (spec.get("securityContext") or {}).get("runAsUser") == 0:
        bad.append("pod")
    bad += [c["name"] for _, c in containers_of(spec) if (c.get("securityContext") or {}).get("runAsUser") == 0]
    return f"runAsUser 0 in {bad}" if bad else None


def _r_seccomp(meta, spec):
    ok_types = ("RuntimeDefault", "Localhost")
    pod = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    bad = []
    if pod is not None and pod not in ok_types:
        bad.append(f"pod:{pod}")
    for _, c in containers_of(spec):
        t = ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        if (t is None and pod not in ok_types) or (t is not None and t not in ok_types):
            bad.append(f"{c['name']}:{t}")
    return f"seccompProfile not RuntimeDefault/Localhost: {bad}" if bad else None


def _r_capabilities(meta, spec):
    bad = []
    for _, c in containers_of(spec):
        caps = (c.get("securityContext") or {}).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{c['name']}: does not drop ALL")
        extra = [a for a in (caps.get("add") or []) if a != "NET_BIND_SERVICE"]
        if extra:
            bad.append(f"{c['name']}: adds {extra}")
    return "; ".join(bad) or None


RESTRICTED_RULES = [
    ("baseline/host-process", "no Windows HostProcess", _r_host_process),
    ("baseline/host-namespaces", "hostNetwork, hostPID, hostIPC unset or false", _r_host_namespaces),
    ("baseline/privileged", "no privileged container", _r_privileged),
    ("baseline/capabilities", "capabilities added only from the baseline set", _r_baseline_caps),
    ("baseline/host-path", "no hostPath volume", _r_host_path),
    ("baseline/host-ports", "no hostPort", _r_host_ports),
    ("baseline/apparmor", "AppArmor unset, RuntimeDefault or Localhost", _r_apparmor),
    ("baseline/selinux", "SELinux type from the allowed list, no user or role", _r_selinux),
    ("baseline/proc-mount", "procMount Default", _r_proc_mount),
    ("baseline/sysctls", "only safe sysctls", _r_sysctls),
    ("restricted/volume-types", "only configMap, csi, downwardAPI, emptyDir, ephemeral, PVC, projected, secret volumes", _r_volume_types),
    ("restricted/privilege-escalation", "allowPrivilegeEscalation: false in every container", _r_privilege_escalation),
    ("restricted/run-as-non-root", "runAsNonRoot: true (pod, or every container)", _r_run_as_non_root),
    ("restricted/run-as-user", "runAsUser never 0", _r_run_as_user),
    ("restricted/seccomp", "seccompProfile RuntimeDefault or Localhost", _r_seccomp),
    ("restricted/capabilities", "drop ALL, add at most NET_BIND_SERVICE", _r_capabilities),
]


def load_docs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]


def relay_config_of(docs):
    for d in docs:
        if d.get("kind") == "ConfigMap" and "zgate-relay.yaml" in (d.get("data") or {}):
            return yaml.safe_load(d["data"]["zgate-relay.yaml"]) or {}
    return {}


def policy_api_why(docs):
    """The relay chart's policyApi wiring in one render: policy_api.* in the
    relay's configuration, the policy file on a writable emptyDir of its own
    (the root file system and /etc/zgate are read-only), the client
    certificate mounted, no policy ConfigMap. None when right, else why."""
    cfg = relay_config_of(docs)
    api = cfg.get("policy_api")
    if not isinstance(api, dict):
        return "the relay's configuration has no policy_api"
    pods = pod_templates(docs)
    if len(pods) != 1:
        return f"{len(pods)} workloads"
    _, _, spec = pods[0]
    relay = spec["containers"][0]
    why = []
    if not str(api.get("url", "")).startswith("https://"):
        why.append(f"policy_api.url {api.get('url')!r} is not https://")
    try:
        if parse_duration_s(api.get("poll", "10s")) < 1:
            why.append(f"policy_api.poll {api.get('poll')} is under 1s")
        if not 0.1 <= parse_duration_s(api.get("timeout", "2s")) <= 60:
            why.append(f"policy_api.timeout {api.get('timeout')} is outside 100ms-60s")
    except ValueError as e:
        why.append(f"policy_api: {e}")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,63}", str(cfg.get("relay_id", ""))):
        why.append(f"relay_id {cfg.get('relay_id')!r} (zgate-api wants CN relay:<relay_id>)")
    # the client certificate: policy_api's own files, or ipam.api's (the
    # relay's defaults), each mounted from a Secret
    ipam_api = (cfg.get("ipam") or {}).get("api") or {}
    proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
    mounted = {"/etc/zgate/" + i["path"]: s["secret"]["name"] for s in proj if "secret" in s
               for i in s["secret"].get("items", [])}
    for k in ("ca", "cert", "key"):
        f = api.get(k) or ipam_api.get(k)
        if not f:
            why.append(f"policy_api.{k} unset and no ipam.api.{k} to default to")
        elif f not in mounted:
            why.append(f"policy_api.{k} {f} is not mounted from a Secret")
    # the fetched policy: written by the relay (temporary file + rename in
    # its directory), so that directory must be a writable emptyDir
    pol = str(cfg.get("policy", ""))
    d = os.path.dirname(pol)
    mounts = [m for m in relay.get("volumeMounts", []) if m["mountPath"] == d]
    if pol.startswith("/etc/zgate/"):
        why.append(f"policy {pol} is on the read-only /etc/zgate")
    if len(mounts) != 1:
        why.append(f"policy {pol}: its directory {d} is not a volume mount of the relay")
    else:
        m = mounts[0]
        vol = [v for v in spec["volumes"] if v["name"] == m["name"]]
        if m.get("readOnly") or m.get("subPath"):
            why.append(f"policy directory {d}: mount {m}: must be writable, the whole volume")
        if not vol or "emptyDir" not in vol[0]:
            why.append(f"policy directory {d}: volume {vol[:1]} is not an emptyDir")
        others = [x["name"] for x in relay.get("volumeMounts", []) if x["name"] == m["name"] and x is not m]
        if others:
            why.append(f"volume {m['name']} is mounted more than once")
    sc = spec.get("securityContext") or {}
    if not isinstance(sc.get("fsGroup"), int) or sc["fsGroup"] <= 0:
        why.append(f"no pod fsGroup ({sc.get('fsGroup')!r}): the relay's uid cannot be sure to write the policy directory")
    if not isinstance(sc.get("runAsUser"), int) or sc["runAsUser"] <= 0:
        why.append(f"no non-root pod runAsUser ({sc.get('runAsUser')!r})")
    # the policy comes from zgate-api only: no ConfigMap holds one, none is mounted
    cms = [c["metadata"]["name"] for c in docs if c.get("kind") == "ConfigMap" and "policy.yaml" in (c.get("data") or {})]
    if cms:
        why.append(f"a policy ConfigMap is rendered too: {cms}")
    paths = {"/etc/zgate/" + i["path"] for s in proj for src in s.values() for i in src.get("items", [])}
    if "/etc/zgate/policy.yaml" in paths:
        why.append("a policy.yaml is mounted under /etc/zgate")
    return "; ".join(why) or None


def check_manifests(root, variant, path, configcheck):
    tag = f"rendered [{variant}]:"
    docs = load_docs(path)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)

    def well_formed():
        bad = [str(d)[:60] for d in docs
               if not d.get("apiVersion") or not d.get("kind") or not (d.get("metadata") or {}).get("name")]
        return f"objects without apiVersion/kind/metadata.name: {bad}" if bad else None
    check(f"{tag} every document is a Kubernetes object with apiVersion, kind and name", well_formed)

    pods = pod_templates(docs)
    check(f"{tag} exactly one workload (the relay Deployment)",
          lambda: None if len(pods) == 1 and pods[0][0].startswith("Deployment/") else f"{[p[0] for p in pods]}")
    if not pods:
        return
    for rid, text, fn in RESTRICTED_RULES:
        def rule(fn=fn):
            why = [f"{name}: {w}" for name, meta, spec in pods for w in [fn(meta, spec)] if w]
            return "; ".join(why) or None
        check(f"{tag} {rid}: {text}", rule)

    name, meta, spec = pods[0]
    relay = spec["containers"][0]
    # the relay's files, from every ConfigMap (configuration and policy
    # have one each)
    cfgmap = {}
    for cm in by_kind.get("ConfigMap") or []:
        cfgmap.update(cm.get("data") or {})

    def read_only_root():
        bad = [c["name"] for _, c in containers_of(spec)
               if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True]
        return f"readOnlyRootFilesystem not true in {bad}" if bad else None
    check(f"{tag} zgate: read-only root file system", read_only_root)

    def ping_sysctl():
        sc = spec.get("securityContext") or {}
        v = {s["name"]: s["value"] for s in sc.get("sysctls", [])}.get("net.ipv4.ping_group_range")
        if v is None:
            return "no net.ipv4.ping_group_range"
        lo, hi = (int(x) for x in v.split())
        gid = sc.get("runAsGroup")
        return None if lo <= gid <= hi else f"{v} excludes runAsGroup {gid}"
    check(f"{tag} zgate: pod sysctl net.ipv4.ping_group_range includes the relay's gid", ping_sysctl)

    def no_token():
        return None if spec.get("automountServiceAccountToken") is False else "service account token mounted"
    check(f"{tag} zgate: no service account token in the pod", no_token)

    def probes():
        want = {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}
        why = []
        for k, p in want.items():
            g = (relay.get(k) or {}).get("httpGet") or {}
            if g.get("path") != p or g.get("port") != "ops":
                why.append(f"{k} {g}")
        ops = [p for p in relay.get("ports", []) if p.get("name") == "ops"]
        if not ops or ops[0].get("protocol") != "TCP":
            why.append("no TCP port named ops")
        return "; ".join(why) or None
    check(f"{tag} zgate: probes GET /health (liveness, startup) and /ready (readiness) on the ops port", probes)

    def resources():
        r = relay.get("resources") or {}
        return None if (r.get("requests") or {}).get("memory") and (r.get("limits") or {}).get("memory") \
            else f"resources {r}: need memory requests and limits"
    check(f"{tag} zgate: resources requested and memory limited", resources)

    def drain():
        cfg = yaml.safe_load(cfgmap.get("zgate-relay.yaml", "{}"))
        d = parse_duration_s(cfg["timeouts"]["drain_grace"])
        t = spec.get("terminationGracePeriodSeconds", 30)
        return None if t > d else f"terminationGracePeriodSeconds {t} <= drain_grace {d}s"
    check(f"{tag} zgate: terminationGracePeriodSeconds exceeds the relay's drain_grace", drain)

    from_api = "policy_api" in yaml.safe_load(cfgmap.get("zgate-relay.yaml", "{}"))

    def config_loads():
        with tempfile.TemporaryDirectory() as tmp:
            c, p = os.path.join(tmp, "zgate-relay.yaml"), os.path.join(tmp, "policy.yaml")
            open(c, "w").write(cfgmap["zgate-relay.yaml"])
            args = [configcheck, c]
            if not from_api:  # with policy_api the relay writes the policy file itself
                open(p, "w").write(cfgmap["policy.yaml"])
                args.append(p)
            r = subprocess.run(args, capture_output=True, text=True)
            return None if r.returncode == 0 else (r.stderr or r.stdout).strip()
    check(f"{tag} zgate: the ConfigMap's config{'' if from_api else ' and policy'} load{'s' if from_api else ''} with the relay's own parsers",
          config_loads)

    # policyApi: the ci/policy-api*.yaml renders must have it (so that this
    # check never passes for want of a render that uses it)
    if from_api or "policy-api" in variant:
        check(f"{tag} zgate: policy_api.* set (https URL, poll, timeout, relay_id, client certificate mounted), "
              f"the fetched policy on a writable emptyDir, no policy ConfigMap", lambda: policy_api_why(docs))

    def mounts_match_config():
        cfg = yaml.safe_load(cfgmap["zgate-relay.yaml"])
        proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
        paths = {"/etc/zgate/" + i["path"] for s in proj for src in s.values() for i in src.get("items", [])}
        mount = [m for m in relay["volumeMounts"] if m["name"] == "config"][0]
        why = []
        if mount["mountPath"] != "/etc/zgate" or mount.get("readOnly") is not True:
            why.append(f"config volume mounted at {mount['mountPath']} readOnly={mount.get('readOnly')}")
        files = [cfg["tls"]["cert"], cfg["tls"]["key"], cfg["tls"]["client_ca"]]
        if not cfg.get("policy_api"):  # else on its writable emptyDir (policy_api_why)
            files.append(cfg["policy"])
        if cfg["tls"].get("crl"):
            files.append(cfg["tls"]["crl"])
        api = (cfg.get("ipam") or {}).get("api") or {}
        files += [api[k] for k in ("ca", "cert", "key") if api.get(k)]
        papi = cfg.get("policy_api") or {}
        files += [papi[k] for k in ("ca", "cert", "key") if papi.get(k)]
        why += [f"{f} is not in the projected volume" for f in files if f not in paths]
        if "/etc/zgate/zgate-relay.yaml" not in paths or relay.get("args", [])[-1:] != ["/etc/zgate/zgate-relay.yaml"]:
            why.append("--config does not point at the mounted zgate-relay.yaml")
        if cfg.get("state_file"):
            if not any(m["mountPath"] == os.path.dirname(cfg["state_file"]) for m in relay["volumeMounts"]):
                why.append(f"state_file {cfg['state_file']} is not on a mounted volume")
        return "; ".join(why) or None
    check(f"{tag} zgate: every file the config names is mounted (config, policy, certificates, zgate-api client certificate, state)", mounts_match_config)

    def ports_match_config():
        cfg = yaml.safe_load(cfgmap["zgate-relay.yaml"])
        ports = {p["name"]: p for p in relay["ports"]}
        why = []
        if int(cfg["listen"].rsplit(":", 1)[1]) != ports["quic"]["containerPort"] or ports["quic"]["protocol"] != "UDP":
            why.append(f"listen {cfg['listen']} vs quic port {ports['quic']}")
        # ZGATE_OPS_LISTEN (environment) overrides the file. The relay's
        # default is loopback (issue 16.1): the probes and Prometheus need
        # the pod address, from the downward API, never 0.0.0.0.
        env = {e["name"]: e for e in relay.get("env", [])}
        ops = env["ZGATE_OPS_LISTEN"].get("value", "") if "ZGATE_OPS_LISTEN" in env else cfg["ops_listen"]
        host = ops.rsplit(":", 1)[0]
        if int(ops.rsplit(":", 1)[1]) != ports["ops"]["containerPort"]:
            why.append(f"ops_listen {ops} vs ops port {ports['ops']}")
        m = re.fullmatch(r"\[?\$\((\w+)\)\]?", host)
        if not m or env.get(m.group(1), {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "status.podIP":
            why.append(f"ops_listen {ops}: not the pod address (status.podIP), so probes fail or every address is open")
        return "; ".join(why) or None
    check(f"{tag} zgate: container ports match listen and ops_listen; ops on the pod address only", ports_match_config)

    services = by_kind.get("Service", [])

    def quic_service():
        q = [s for s in services if any(p.get("protocol") == "UDP" for p in s["spec"]["ports"])]
        if len(q) != 1:
            return f"{len(q)} UDP Services"
        s = q[0]["spec"]
        why = []
        if s.get("sessionAffinity") != "ClientIP":
            why.append(f"sessionAffinity {s.get('sessionAffinity')}")
        if [p.get("targetPort") for p in s["ports"]] != ["quic"]:
            why.append(f"ports {s['ports']}: only quic belongs here")
        return "; ".join(why) or None
    check(f"{tag} zgate: one UDP Service for QUIC with ClientIP affinity, no ops port on it", quic_service)

    def ops_service():
        o = [s for s in services if any(p.get("targetPort") == "ops" for p in s["spec"]["ports"])]
        if len(o) != 1:
            return f"{len(o)} Services with the ops port"
        return None if o[0]["spec"].get("type", "ClusterIP") == "ClusterIP" else f"ops Service type {o[0]['spec'].get('type')}"
    check(f"{tag} zgate: a separate cluster-internal Service for the ops port", ops_service)

    def checksum():
        ann = meta.get("annotations") or {}
        v = ann.get("checksum/config", "")
        return None if re.fullmatch(r"[0-9a-f]{64}", v) else f"checksum/config annotation {v!r}"
    check(f"{tag} zgate: pod template carries the ConfigMap checksum", checksum)

    def policy_apart():
        # Issue 18.4: the policy must not be hashed into the pod template
        # (a policy edit would roll every pod and drop every tunnel).
        cms = by_kind.get("ConfigMap") or []
        with_cfg = [c for c in cms if "zgate-relay.yaml" in (c.get("data") or {})]
        with_pol = [c for c in cms if "policy.yaml" in (c.get("data") or {})]
        why = []
        if from_api:
            if len(with_cfg) != 1 or with_pol:
                why.append(f"with policy_api want the configuration's ConfigMap and no policy, got "
                           f"{[(c['metadata']['name'], sorted(c.get('data') or {})) for c in cms]}")
        elif len(with_cfg) != 1 or len(with_pol) != 1 or with_cfg[0] is with_pol[0]:
            why.append(f"want the configuration and the policy in two ConfigMaps, got "
                       f"{[(c['metadata']['name'], sorted(c.get('data') or {})) for c in cms]}")
        extra = [k for k in (meta.get("annotations") or {}) if k.startswith("checksum/")
                 and k not in ("checksum/config", "checksum/tls")]
        if extra:
            why.append(f"other checksum annotations {extra}")
        return "; ".join(why) or None
    check(f"{tag} zgate: the policy has a ConfigMap of its own (none with policy_api), outside every checksum",
          policy_apart)

    server_certs = [c for c in by_kind.get("Certificate") or [] if "client auth" not in (c["spec"].get("usages") or [])]
    client_certs = [c for c in by_kind.get("Certificate") or [] if "client auth" in (c["spec"].get("usages") or [])]
    for cert in client_certs:
        def api_client_certificate(cert=cert):
            cs = cert["spec"]
            cfg = yaml.safe_load(cfgmap["zgate-relay.yaml"])
            api = (cfg.get("ipam") or {}).get("api") or {}
            proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
            mounted = {"/etc/zgate/" + i["path"]: s["secret"]["name"] for s in proj if "secret" in s
                       for i in s["secret"].get("items", [])}
            why = []
            if (cfg.get("ipam") or {}).get("backend") != "api":
                why.append("a client Certificate, but ipam.backend is not api")
            for f in (api.get("cert"), api.get("key")):
                if mounted.get(f) != cs["secretName"]:
                    why.append(f"ipam.api {f} comes from {mounted.get(f)}, not the Certificate's Secret {cs['secretName']}")
            papi = cfg.get("policy_api") or {}
            for f in (papi.get("cert"), papi.get("key")):
                if papi and mounted.get(f or "") != cs["secretName"]:
                    why.append(f"policy_api {f} comes from {mounted.get(f or '')}, not the Certificate's Secret {cs['secretName']}")
            if cs.get("commonName") != f"relay:{cfg.get('relay_id')}":
                why.append(f"commonName {cs.get('commonName')!r}; zgate-api wants relay:{cfg.get('relay_id')}")
            if "server auth" in (cs.get("usages") or []):
                why.append("usages include server auth")
            if (cs.get("privateKey") or {}).get("rotationPolicy") != "Always":
                why.append("privateKey.rotationPolicy is not Always")
            return "; ".join(why) or None
        check(f"{tag} zgate: Certificate/{cert['metadata']['name']} is the mounted zgate-api client certificate, "
              f"CN relay:<relay_id>, client auth only", api_client_certificate)

    def ipam_api():
        cfg = yaml.safe_load(cfgmap["zgate-relay.yaml"])
        ipam = cfg.get("ipam") or {}
        if not ipam:
            return None
        why = []
        if ipam.get("backend") not in ("local", "api"):
            why.append(f"ipam.backend {ipam.get('backend')!r}")
        if ipam.get("backend") == "api":
            api = ipam.get("api") or {}
            if not str(api.get("url", "")).startswith("https://"):
                why.append(f"ipam.api.url {api.get('url')!r} is not https://")
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,63}", str(cfg.get("relay_id", ""))):
                why.append(f"relay_id {cfg.get('relay_id')!r}")
            missing = [k for k in ("ca", "cert", "key") if not api.get(k)]
            if missing:
                why.append(f"ipam.api lacks {missing}")
        return "; ".join(why) or None
    check(f"{tag} zgate: ipam.backend api has an https URL, a relay_id and the client certificate files", ipam_api)

    for cert in server_certs:
        def certificate(cert=cert):
            cs = cert["spec"]
            cfg = yaml.safe_load(cfgmap["zgate-relay.yaml"])
            proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
            mounted = {"/etc/zgate/" + i["path"]: s["secret"]["name"] for s in proj if "secret" in s
                       for i in s["secret"].get("items", [])}
            why = []
            for f in (cfg["tls"]["cert"], cfg["tls"]["key"]):
                if mounted.get(f) != cs["secretName"]:
                    why.append(f"{f} comes from {mounted.get(f)}, not the Certificate's Secret {cs['secretName']}")
            if "server auth" not in (cs.get("usages") or []):
                why.append(f"usages {cs.get('usages')} lack server auth (the agents refuse the certificate)")
            host = re.match(r"https://\[?([^\]/]+?)\]?(:\d+)?/", cfg["uri_template"]).group(1)
            if host not in (cs.get("dnsNames") or []) + (cs.get("ipAddresses") or []):
                why.append(f"the certificate does not name {host}, the host in uri_template")
            ref = cs["issuerRef"]
            if ref.get("kind", "Issuer") == "Issuer":
                made = [i["metadata"]["name"] for i in by_kind.get("Issuer") or []]
                if made and ref["name"] not in made:
                    why.append(f"issuerRef {ref['name']} is none of the rendered Issuers {made}")
            if (cs.get("privateKey") or {}).get("rotationPolicy") != "Always":
                why.append("privateKey.rotationPolicy is not Always (a renewal keeps the old key)")
            return "; ".join(why) or None
        check(f"{tag} zgate: Certificate/{cert['metadata']['name']} is the mounted certificate, "
              f"for a server, naming the uri_template host, from a rendered issuer", certificate)

    def selectors():
        labels = (meta.get("labels") or {})
        why = []
        for d in docs:
            sel = None
            k = d["kind"]
            if k == "Service":
                sel = d["spec"].get("selector")
            elif k in ("PodDisruptionBudget", "Deployment"):
                sel = d["spec"]["selector"].get("matchLabels")
            elif k == "NetworkPolicy":
                sel = d["spec"]["podSelector"].get("matchLabels")
            if sel is not None and any(labels.get(a) != b for a, b in sel.items()):
                why.append(f"{k}/{d['metadata']['name']} selects {sel}")
        return "; ".join(why) or None
    check(f"{tag} zgate: Services, PDB and NetworkPolicy select the relay pods", selectors)


# ---------------------------------------------------------------- zgate-api chart, rendered

def check_api_manifests(root, variant, path, apibin):
    """One rendered zgate-api chart: the restricted profile on every Pod
    spec, and the chart's promises (HTTPS probes, the database only from a
    Secret, the ConfigMap accepted by zgate-api --check-config with every
    file it names mounted)."""
    tag = f"rendered zgate-api [{variant}]:"
    docs = load_docs(path)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)

    def well_formed():
        bad = [str(d)[:60] for d in docs
               if not d.get("apiVersion") or not d.get("kind") or not (d.get("metadata") or {}).get("name")]
        return f"objects without apiVersion/kind/metadata.name: {bad}" if bad else None
    check(f"{tag} every document is a Kubernetes object with apiVersion, kind and name", well_formed)

    pods = pod_templates(docs)
    check(f"{tag} exactly one workload (the zgate-api Deployment)",
          lambda: None if len(pods) == 1 and pods[0][0].startswith("Deployment/") else f"{[p[0] for p in pods]}")
    if not pods:
        return
    for rid, text, fn in RESTRICTED_RULES:
        def rule(fn=fn):
            why = [f"{name}: {w}" for name, meta, spec in pods for w in [fn(meta, spec)] if w]
            return "; ".join(why) or None
        check(f"{tag} {rid}: {text}", rule)

    name, meta, spec = pods[0]
    api = spec["containers"][0]
    cfgmap = {}
    for cm in by_kind.get("ConfigMap") or []:
        cfgmap.update(cm.get("data") or {})
    cfg = yaml.safe_load(cfgmap.get("zgate-api.yaml", "{}")) or {}

    def read_only_root():
        bad = [c["name"] for _, c in containers_of(spec)
               if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True]
        return f"readOnlyRootFilesystem not true in {bad}" if bad else None
    check(f"{tag} read-only root file system", read_only_root)

    def no_token():
        return None if spec.get("automountServiceAccountToken") is False else "service account token mounted"
    check(f"{tag} no service account token in the pod", no_token)

    def replicas():
        d = by_kind["Deployment"][0]["spec"]
        return None if int(d.get("replicas", 1)) >= 1 else f"replicas {d.get('replicas')}"
    check(f"{tag} replicas set", replicas)

    def probes():
        want = {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}
        why = []
        for k, p in want.items():
            g = (api.get(k) or {}).get("httpGet") or {}
            if g.get("path") != p or g.get("port") != "https" or g.get("scheme") != "HTTPS":
                why.append(f"{k} {g}")
        ports = {p["name"]: p for p in api.get("ports", [])}
        if "https" not in ports or ports["https"].get("protocol") != "TCP":
            why.append("no TCP port named https")
        elif int(cfg.get("listen", ":0").rsplit(":", 1)[1]) != ports["https"]["containerPort"]:
            why.append(f"listen {cfg.get('listen')} vs port {ports['https']}")
        return "; ".join(why) or None
    check(f"{tag} probes GET /health (liveness, startup) and /ready (readiness) over HTTPS on the listen port", probes)

    def resources():
        r = api.get("resources") or {}
        return None if (r.get("requests") or {}).get("memory") and (r.get("limits") or {}).get("memory") \
            else f"resources {r}: need memory requests and limits"
    check(f"{tag} resources requested and memory limited", resources)

    def database_from_secret():
        why = []
        if "database" in cfg:
            why.append("the ConfigMap holds the database string")
        env = {e["name"]: e for e in api.get("env", [])}
        ref = ((env.get("ZGATE_DATABASE") or {}).get("valueFrom") or {}).get("secretKeyRef")
        if not ref:
            why.append("ZGATE_DATABASE does not come from a Secret (secretKeyRef)")
        else:
            made = {sec["metadata"]["name"]: sec for sec in by_kind.get("Secret") or []}
            if ref["name"] in made and ref["key"] not in (made[ref["name"]].get("data") or {}):
                why.append(f"the chart's Secret {ref['name']} has no key {ref['key']}")
        for sec in by_kind.get("Secret") or []:
            for k, v in (sec.get("data") or {}).items():
                if k == "database" and not v:
                    why.append(f"Secret {sec['metadata']['name']}: empty database")
        return "; ".join(why) or None
    check(f"{tag} the database string comes only from a Secret (ZGATE_DATABASE secretKeyRef), never the ConfigMap",
          database_from_secret)

    def mounts_match_config():
        proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
        paths = {"/etc/zgate/" + i["path"] for s in proj for src in s.values() for i in src.get("items", [])}
        mount = [m for m in api["volumeMounts"] if m["name"] == "config"][0]
        why = []
        if mount["mountPath"] != "/etc/zgate" or mount.get("readOnly") is not True:
            why.append(f"config volume mounted at {mount['mountPath']} readOnly={mount.get('readOnly')}")
        files = [cfg.get("cert"), cfg.get("key"), cfg.get("ca")]
        for k in ("crl", "admin_token_file"):
            if cfg.get(k):
                files.append(cfg[k])
        why += [f"{f} is not in the projected volume" for f in files if f not in paths]
        if "/etc/zgate/zgate-api.yaml" not in paths or api.get("args", [])[-1:] != ["/etc/zgate/zgate-api.yaml"]:
            why.append("--config does not point at the mounted zgate-api.yaml")
        return "; ".join(why) or None
    check(f"{tag} every file the config names is mounted (config, certificates, CRL, admin token)", mounts_match_config)

    def crl_wired():
        # A CRL mounted (from any Secret) or carried by the chart's own
        # Secret is one the configuration names, and the other way round;
        # the chart's Secret holds no empty key (e.g. a ca.crt that
        # cert-manager provides).
        proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
        mounted = {i["path"]: (src.get("name"), i["key"]) for s in proj for src in s.values()
                   for i in src.get("items", [])}
        why = []
        crl = cfg.get("crl")
        if crl and (crl != "/etc/zgate/tls/ca.crl" or "tls/ca.crl" not in mounted):
            why.append(f"crl {crl} but mounted {mounted.get('tls/ca.crl')}")
        if not crl and "tls/ca.crl" in mounted:
            why.append(f"a CRL is mounted ({mounted['tls/ca.crl']}) but the config names none")
        for sec in by_kind.get("Secret") or []:
            data = sec.get("data") or {}
            name = sec["metadata"]["name"]
            why += [f"Secret {name}: empty {k}" for k, v in data.items() if not v]
            if "ca.crl" in data and mounted.get("tls/ca.crl") != (name, "ca.crl"):
                why.append(f"Secret {name} carries ca.crl, mounted is {mounted.get('tls/ca.crl')}")
        return "; ".join(why) or None
    check(f"{tag} a CRL is named in the config exactly when one is mounted, from the Secret that carries it",
          crl_wired)

    def config_loads():
        with tempfile.TemporaryDirectory() as tmp:
            tls = os.path.join(tmp, "tls")
            r = subprocess.run([os.path.join(root, "scripts/gen-certs.sh"), "-d", tls, "--api", "zgate-api",
                                "--api-relay", "r1"], capture_output=True, text=True)
            if r.returncode != 0:
                return f"gen-certs.sh: {r.stderr.strip()}"
            os.makedirs(os.path.join(tmp, "admin"))
            with open(os.path.join(tmp, "admin/token"), "w") as f:
                f.write("packaging-test-admin-token-0123456789\n")
            text = cfgmap["zgate-api.yaml"].replace("/etc/zgate/", tmp + "/")
            c = os.path.join(tmp, "zgate-api.yaml")
            with open(c, "w") as f:
                f.write(text)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "ZGATE_DATABASE": "host=postgres.invalid dbname=zgate user=zgate"}
            for e in api.get("env", []):
                if e["name"].startswith("ZGATE_") and "value" in e:
                    env[e["name"]] = e["value"]
            r = subprocess.run([apibin, "--check-config", "--config", c], capture_output=True, text=True, env=env)
            return None if r.returncode == 0 else (r.stderr or r.stdout).strip()
    if apibin and os.access(apibin, os.X_OK):
        check(f"{tag} the ConfigMap's configuration passes zgate-api --check-config", config_loads)

    services = by_kind.get("Service", [])

    def service():
        if len(services) != 1:
            return f"{len(services)} Services"
        sp = services[0]["spec"]
        why = []
        if [p.get("targetPort") for p in sp["ports"]] != ["https"] or sp["ports"][0].get("protocol") != "TCP":
            why.append(f"ports {sp['ports']}")
        return "; ".join(why) or None
    check(f"{tag} one TCP Service to the https port", service)

    def checksum():
        ann = meta.get("annotations") or {}
        v = ann.get("checksum/config", "")
        return None if re.fullmatch(r"[0-9a-f]{64}", v) else f"checksum/config annotation {v!r}"
    check(f"{tag} pod template carries the ConfigMap checksum", checksum)

    for cert in by_kind.get("Certificate") or []:
        def certificate(cert=cert):
            cs = cert["spec"]
            proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
            mounted = {"/etc/zgate/" + i["path"]: s["secret"]["name"] for s in proj if "secret" in s
                       for i in s["secret"].get("items", [])}
            why = []
            for f in (cfg["cert"], cfg["key"]):
                if mounted.get(f) != cs["secretName"]:
                    why.append(f"{f} comes from {mounted.get(f)}, not the Certificate's Secret {cs['secretName']}")
            if "server auth" not in (cs.get("usages") or []):
                why.append(f"usages {cs.get('usages')} lack server auth (the relays refuse the certificate)")
            svc = services[0]["metadata"] if services else {}
            want = f"{svc.get('name')}.{svc.get('namespace')}.svc"
            if not (cs.get("dnsNames") or cs.get("ipAddresses")):
                why.append("no names")
            elif not cs.get("ipAddresses") and want not in (cs.get("dnsNames") or []) and \
                    cert["metadata"]["name"] == svc.get("name"):
                why.append(f"the certificate does not name {want}, the Service's cluster name")
            if (cs.get("privateKey") or {}).get("rotationPolicy") != "Always":
                why.append("privateKey.rotationPolicy is not Always")
            return "; ".join(why) or None
        check(f"{tag} Certificate/{cert['metadata']['name']} is the mounted server certificate naming the Service", certificate)

    for sm in by_kind.get("ServiceMonitor") or []:
        def monitor(sm=sm):
            ep = sm["spec"]["endpoints"][0]
            why = []
            if ep.get("scheme") != "https" or ep.get("port") != "https" or ep.get("path") != "/metrics":
                why.append(f"endpoint {ep}")
            if not ((ep.get("tlsConfig") or {}).get("ca") or {}).get("secret"):
                why.append("no CA to verify zgate-api's certificate")
            return "; ".join(why) or None
        check(f"{tag} ServiceMonitor scrapes /metrics over HTTPS, verifying the certificate", monitor)

    def selectors():
        labels = (meta.get("labels") or {})
        why = []
        for d in docs:
            sel = None
            k = d["kind"]
            if k == "Service":
                sel = d["spec"].get("selector")
            elif k in ("PodDisruptionBudget", "Deployment"):
                sel = d["spec"]["selector"].get("matchLabels")
            if sel is not None and any(labels.get(a) != b for a, b in sel.items()):
                why.append(f"{k}/{d['metadata']['name']} selects {sel}")
        return "; ".join(why) or None
    check(f"{tag} the Service and PDB select the zgate-api pods", selectors)


# ---------------------------------------------------------------- zgate-connector chart, rendered

def check_connector_manifests(root, variant, path, connbin):
    """One rendered zgate-connector chart: the restricted profile on every
    Pod spec, and the chart's promises (HTTP probes on the ops port, no
    Service: it dials out; every file the configuration names mounted;
    the ConfigMap accepted by zgate-connector --check-config)."""
    tag = f"rendered zgate-connector [{variant}]:"
    docs = load_docs(path)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)

    def well_formed():
        bad = [str(d)[:60] for d in docs
               if not d.get("apiVersion") or not d.get("kind") or not (d.get("metadata") or {}).get("name")]
        return f"objects without apiVersion/kind/metadata.name: {bad}" if bad else None
    check(f"{tag} every document is a Kubernetes object with apiVersion, kind and name", well_formed)

    pods = pod_templates(docs)
    check(f"{tag} exactly one workload (the zgate-connector Deployment)",
          lambda: None if len(pods) == 1 and pods[0][0].startswith("Deployment/") else f"{[p[0] for p in pods]}")
    if not pods:
        return
    for rid, text, fn in RESTRICTED_RULES:
        def rule(fn=fn):
            why = [f"{name}: {w}" for name, meta, spec in pods for w in [fn(meta, spec)] if w]
            return "; ".join(why) or None
        check(f"{tag} {rid}: {text}", rule)

    name, meta, spec = pods[0]
    conn = spec["containers"][0]
    cfgmap = {}
    for cm in by_kind.get("ConfigMap") or []:
        cfgmap.update(cm.get("data") or {})
    cfg = yaml.safe_load(cfgmap.get("zgate-connector.yaml", "{}")) or {}

    def read_only_root():
        bad = [c["name"] for _, c in containers_of(spec)
               if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True]
        return f"readOnlyRootFilesystem not true in {bad}" if bad else None
    check(f"{tag} read-only root file system", read_only_root)

    def no_caps_at_all():
        why = []
        for _, c in containers_of(spec):
            caps = (c.get("securityContext") or {}).get("capabilities") or {}
            if caps.get("add"):
                why.append(f"{c['name']} adds {caps['add']}")
            if caps.get("drop") != ["ALL"]:
                why.append(f"{c['name']} drops {caps.get('drop')}")
        if (spec.get("securityContext") or {}).get("sysctls"):
            why.append(f"sysctls {spec['securityContext']['sysctls']}")
        return "; ".join(why) or None
    check(f"{tag} no capability added (no NET_ADMIN, no TUN)", no_caps_at_all)

    def no_token():
        return None if spec.get("automountServiceAccountToken") is False else "service account token mounted"
    check(f"{tag} no service account token in the pod", no_token)

    def probes():
        want = {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}
        why = []
        for k, p in want.items():
            g = (conn.get(k) or {}).get("httpGet") or {}
            if g.get("path") != p or g.get("port") != "ops" or g.get("scheme", "HTTP") != "HTTP":
                why.append(f"{k} {g}")
        ports = {p["name"]: p for p in conn.get("ports", [])}
        if set(ports) != {"ops"} or ports["ops"].get("protocol") != "TCP":
            why.append(f"container ports {list(ports)}: expected only the TCP ops port")
        elif int(str(cfg.get("ops_listen", ":0")).rsplit(":", 1)[1]) != ports["ops"]["containerPort"]:
            why.append(f"ops_listen {cfg.get('ops_listen')} vs port {ports['ops']}")
        elif not str(cfg.get("ops_listen", "")).startswith("0.0.0.0:"):
            why.append(f"ops_listen {cfg.get('ops_listen')}: the kubelet's probes cannot reach loopback")
        return "; ".join(why) or None
    check(f"{tag} probes GET /health (liveness, startup) and /ready (readiness) on the ops port, its only port", probes)

    def no_service():
        svcs = [d["metadata"]["name"] for d in by_kind.get("Service") or []]
        return f"Services {svcs}: the connector dials out and takes no connections" if svcs else None
    check(f"{tag} no Service: nothing connects to the connector", no_service)

    def resources():
        r = conn.get("resources") or {}
        return None if (r.get("requests") or {}).get("memory") and (r.get("limits") or {}).get("memory") \
            else f"resources {r}: need memory requests and limits"
    check(f"{tag} resources requested and memory limited", resources)

    def mounts_match_config():
        proj = [v for v in spec["volumes"] if v["name"] == "config"][0]["projected"]["sources"]
        paths = {"/etc/zgate/" + i["path"] for s in proj for src in s.values() for i in src.get("items", [])}
        mount = [m for m in conn["volumeMounts"] if m["name"] == "config"][0]
        why = []
        if mount["mountPath"] != "/etc/zgate" or mount.get("readOnly") is not True:
            why.append(f"config volume mounted at {mount['mountPath']} readOnly={mount.get('readOnly')}")
        why += [f"{k} {cfg.get(k)} is not in the projected volume" for k in ("cert", "key", "ca", "policy")
                if cfg.get(k) not in paths]
        secret_paths = {"/etc/zgate/" + i["path"] for s in proj if "secret" in s for i in s["secret"].get("items", [])}
        if cfg.get("key") not in secret_paths:
            why.append(f"the key {cfg.get('key')} does not come from a Secret")
        if "/etc/zgate/zgate-connector.yaml" not in paths or conn.get("args", [])[-1:] != ["/etc/zgate/zgate-connector.yaml"]:
            why.append("--config does not point at the mounted zgate-connector.yaml")
        if cfg.get("audit") != "-":
            why.append(f"audit {cfg.get('audit')!r}: the root file system is read-only, audit goes to standard output")
        return "; ".join(why) or None
    check(f"{tag} every file the config names is mounted (config, policy, certificates; the key from a Secret)",
          mounts_match_config)

    def policy_loads():
        pol = yaml.safe_load(cfgmap.get("connector-policy.yaml", "")) or {}
        return None if pol.get("version") == 1 and pol.get("default_action") in ("deny", "allow") \
            else f"connector-policy.yaml: {str(pol)[:80]}"
    check(f"{tag} the ConfigMap's policy is a version 1 policy with a default_action", policy_loads)

    def config_loads():
        with tempfile.TemporaryDirectory() as tmp:
            tls = os.path.join(tmp, "tls")
            r = subprocess.run([os.path.join(root, "scripts/gen-certs.sh"), "-d", tls, "--connector", "c1"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                return f"gen-certs.sh: {r.stderr.strip()}"
            os.rename(os.path.join(tls, "connector-c1.crt"), os.path.join(tls, "connector.crt"))
            os.rename(os.path.join(tls, "connector-c1.key"), os.path.join(tls, "connector.key"))
            with open(os.path.join(tmp, "connector-policy.yaml"), "w") as f:
                f.write(cfgmap["connector-policy.yaml"])
            c = os.path.join(tmp, "zgate-connector.yaml")
            with open(c, "w") as f:
                f.write(cfgmap["zgate-connector.yaml"].replace("/etc/zgate/", tmp + "/"))
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            r = subprocess.run([connbin, "--check-config", "--config", c], capture_output=True, text=True, env=env)
            return None if r.returncode == 0 else (r.stderr or r.stdout).strip()
    if connbin and os.access(connbin, os.X_OK):
        check(f"{tag} the ConfigMap's configuration passes zgate-connector --check-config", config_loads)

    def checksum():
        ann = meta.get("annotations") or {}
        bad = [k for k in ("checksum/config", "checksum/secret") if not re.fullmatch(r"[0-9a-f]{64}", ann.get(k, ""))]
        return f"annotations {bad} missing" if bad else None
    check(f"{tag} pod template carries the ConfigMap and Secret checksums (a change rolls the pod)", checksum)

    def selectors():
        labels = (meta.get("labels") or {})
        sel = by_kind["Deployment"][0]["spec"]["selector"].get("matchLabels") or {}
        return None if sel and all(labels.get(a) == b for a, b in sel.items()) else f"selector {sel} vs labels {labels}"
    check(f"{tag} the Deployment selects its own pods", selectors)


# ---------------------------------------------------------------- self-test

MUTATIONS = [
    ("baseline/host-namespaces", lambda s: s.__setitem__("hostNetwork", True)),
    ("baseline/host-process", lambda s: s["securityContext"].__setitem__("windowsOptions", {"hostProcess": True})),
    ("baseline/privileged", lambda s: s["containers"][0]["securityContext"].__setitem__("privileged", True)),
    ("baseline/capabilities", lambda s: s["containers"][0]["securityContext"]["capabilities"].__setitem__("add", ["SYS_ADMIN"])),
    ("baseline/host-path", lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}})),
    ("baseline/host-ports", lambda s: s["containers"][0]["ports"][0].__setitem__("hostPort", 4433)),
    ("baseline/apparmor", lambda s: s["securityContext"].__setitem__("appArmorProfile", {"type": "Unconfined"})),
    ("baseline/selinux", lambda s: s["securityContext"].__setitem__("seLinuxOptions", {"type": "spc_t"})),
    ("baseline/proc-mount", lambda s: s["containers"][0]["securityContext"].__setitem__("procMount", "Unmasked")),
    ("baseline/sysctls", lambda s: s["securityContext"]["sysctls"].append({"name": "net.core.somaxconn", "value": "1024"})),
    ("restricted/volume-types", lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}})),
    ("restricted/privilege-escalation", lambda s: s["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")),
    ("restricted/run-as-non-root", lambda s: (s["securityContext"].pop("runAsNonRoot"),
                                               s["containers"][0]["securityContext"].pop("runAsNonRoot"))),
    ("restricted/run-as-user", lambda s: s["containers"][0]["securityContext"].__setitem__("runAsUser", 0)),
    ("restricted/seccomp", lambda s: s["containers"][0]["securityContext"].__setitem__("seccompProfile", {"type": "Unconfined"})),
    ("restricted/capabilities", lambda s: s["containers"][0]["securityContext"]["capabilities"].__setitem__("drop", ["NET_RAW"])),
    ("restricted/capabilities", lambda s: s["containers"][0]["securityContext"]["capabilities"].__setitem__("add", ["NET_ADMIN"])),
]


def selftest(path):
    docs = load_docs(path)
    pods = pod_templates(docs)
    rules = {rid: fn for rid, _, fn in RESTRICTED_RULES}
    name, meta, spec = pods[0]

    def clean():
        bad = [rid for rid, fn in rules.items() if fn(meta, spec)]
        return f"the unmodified Deployment fails {bad}" if bad else None
    check("selftest: the rendered Deployment passes every rule", clean)
    covered = set()
    for rid, mutate in MUTATIONS:
        def caught(rid=rid, mutate=mutate):
            s = copy.deepcopy(spec)
            mutate(s)
            if not rules[rid](meta, s):
                return "the rule check did not notice"
            return None
        check(f"selftest: breaking {rid} is caught", caught)
        covered.add(rid)
    check("selftest: every rule has a breaking case",
          lambda: None if covered == set(rules) else f"no case for {sorted(set(rules) - covered)}")


def _relay_spec(docs):
    return [d for d in docs if d.get("kind") == "Deployment"][0]["spec"]["template"]["spec"]


def _edit_config(docs, fn):
    for d in docs:
        if d.get("kind") == "ConfigMap" and "zgate-relay.yaml" in (d.get("data") or {}):
            cfg = yaml.safe_load(d["data"]["zgate-relay.yaml"])
            fn(cfg)
            d["data"]["zgate-relay.yaml"] = yaml.safe_dump(cfg)


def _policy_mount(docs):
    return [m for m in _relay_spec(docs)["containers"][0]["volumeMounts"]
            if m["mountPath"] == os.path.dirname(relay_config_of(docs)["policy"])][0]


def _policy_volume(docs):
    name = _policy_mount(docs)["name"]
    return [v for v in _relay_spec(docs)["volumes"] if v["name"] == name][0]


POLICY_API_MUTATIONS = [
    ("the policy directory mounted read-only", lambda ds: _policy_mount(ds).__setitem__("readOnly", True)),
    ("the policy directory a ConfigMap instead of an emptyDir",
     lambda ds: (_policy_volume(ds).pop("emptyDir"), _policy_volume(ds).__setitem__("configMap", {"name": "x"}))),
    ("the policy directory not mounted",
     lambda ds: _relay_spec(ds)["containers"][0]["volumeMounts"].remove(_policy_mount(ds))),
    ("policy back on /etc/zgate", lambda ds: _edit_config(ds, lambda c: c.__setitem__("policy", "/etc/zgate/policy.yaml"))),
    ("no policy_api in the configuration", lambda ds: _edit_config(ds, lambda c: c.pop("policy_api"))),
    ("an http:// policy_api.url",
     lambda ds: _edit_config(ds, lambda c: c["policy_api"].__setitem__("url", "http://zgate-api:8443"))),
    ("a policy_api.poll under 1s", lambda ds: _edit_config(ds, lambda c: c["policy_api"].__setitem__("poll", "500ms"))),
    ("no relay_id", lambda ds: _edit_config(ds, lambda c: c.pop("relay_id"))),
    ("no pod fsGroup", lambda ds: _relay_spec(ds)["securityContext"].pop("fsGroup")),
    ("the client certificate not mounted",
     lambda ds: [src["secret"]["items"].clear() for v in _relay_spec(ds)["volumes"] if v["name"] == "config"
                 for src in v["projected"]["sources"] if "secret" in src]),
    ("a policy ConfigMap rendered too",
     lambda ds: ds.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"},
                           "data": {"policy.yaml": "version: 1\n"}})),
]


def policy_api_selftest(path):
    docs = load_docs(path)
    check("selftest: the rendered policyApi chart passes the policy_api check", lambda: policy_api_why(docs))
    for what, mutate in POLICY_API_MUTATIONS:
        def caught(mutate=mutate):
            ds = copy.deepcopy(docs)
            mutate(ds)
            try:
                return None if policy_api_why(ds) else "the policy_api check did not notice"
            except Exception as e:  # a crash is not a catch: manifests would report it, not say why
                return f"the policy_api check crashed: {type(e).__name__}: {e}"
        check(f"selftest: the policy_api check catches {what}", caught)


def main(argv):
    if len(argv) >= 2 and argv[0] == "static":
        root = argv[1]
        staged = argv[3] if len(argv) >= 4 and argv[2] == "--staged-rootfs" else None
        staged_api = argv[5] if len(argv) >= 6 and argv[4] == "--staged-api-rootfs" else None
        staged_connector = argv[7] if len(argv) >= 8 and argv[6] == "--staged-connector-rootfs" else None
        check_yaml_files(root)
        check_dockerfile(root, "docker/relay.Dockerfile", "relay", staged)
        check_dockerfile(root, "docker/api.Dockerfile", "api", staged_api)
        check_dockerfile(root, "docker/agent.Dockerfile", "agent")
        check_dockerfile(root, "docker/certgen.Dockerfile", "certgen")
        check_dockerfile(root, "docker/connector.Dockerfile", "connector", staged_connector)
        check_compose(root)
        check_compose_connector(root)
        check_chart_static(root)
        check_chart_static(root, "zgate-api", "docker/api.Dockerfile")
        check_chart_static(root, "zgate-connector", "docker/connector.Dockerfile")
    elif len(argv) == 5 and argv[0] == "manifests":
        check_manifests(argv[1], argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[0] == "api-manifests":
        check_api_manifests(argv[1], argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[0] == "connector-manifests":
        check_connector_manifests(argv[1], argv[2], argv[3], argv[4])
    elif len(argv) == 2 and argv[0] == "selftest":
        selftest(argv[1])
    elif len(argv) == 2 and argv[0] == "policy-api-selftest":
        policy_api_selftest(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if RESULTS["fail"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
