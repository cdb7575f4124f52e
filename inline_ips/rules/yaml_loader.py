"""Load ``rules.yaml`` into a frozen :class:`~inline_ips.rules.model.RuleSet`.

Every problem is reported with the file, the line and the rule id, all of
them at once (``rules.yaml:42: rule 2000001: unknown key 'treshold' (did you
mean 'threshold'?)``), so ``check-rules`` can list a whole file's mistakes in
one run. Nothing here runs per packet. Suricata ``.rules`` files named under
``include:`` are resolved relative to the YAML file and handed to the rule
language parser; this module does not parse that language itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import re2
import yaml

from inline_ips.normalize import Normalize
from inline_ips.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from inline_ips.rules.addresses import (
    ANY_ADDRESS,
    ANY_PORT,
    AddressSet,
    PortSet,
    SetSyntaxError,
    parse_addresses,
    parse_ports,
)
from inline_ips.rules.keywords import parse_content, parse_duration, parse_flags
from inline_ips.rules.model import (
    AppProto,
    Buffer,
    BufferMatch,
    Content,
    FlowMatch,
    Header,
    Match,
    Measure,
    Origin,
    RateKey,
    RateRule,
    Regex,
    RuleAction,
    RuleSet,
    SignatureRule,
)
from inline_ips.rules.policy import POLICY_KEYS, Policy, parse_policy
from inline_ips.verdict import Action

# Suricata's shipped defaults (suricata.yaml address-groups / port-groups), then Snort 3's extras.
DEFAULT_VARS: dict[str, str] = {
    "HOME_NET": "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]",
    "EXTERNAL_NET": "!$HOME_NET",
    "HTTP_SERVERS": "$HOME_NET",
    "SMTP_SERVERS": "$HOME_NET",
    "SQL_SERVERS": "$HOME_NET",
    "DNS_SERVERS": "$HOME_NET",
    "TELNET_SERVERS": "$HOME_NET",
    "AIM_SERVERS": "$EXTERNAL_NET",
    "DC_SERVERS": "$HOME_NET",
    "DNP3_SERVER": "$HOME_NET",
    "DNP3_CLIENT": "$HOME_NET",
    "MODBUS_CLIENT": "$HOME_NET",
    "MODBUS_SERVER": "$HOME_NET",
    "ENIP_CLIENT": "$HOME_NET",
    "ENIP_SERVER": "$HOME_NET",
    "HTTP_PORTS": "80",
    "SHELLCODE_PORTS": "!80",
    "ORACLE_PORTS": "1521",
    "SSH_PORTS": "22",
    "DNP3_PORTS": "20000",
    "MODBUS_PORTS": "502",
    "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
    "FTP_PORTS": "21",
    "GENEVE_PORTS": "6081",
    "VXLAN_PORTS": "4789",
    "TEREDO_PORTS": "3544",
    # Names Snort 3's snort_defaults.lua has and suricata.yaml lacks, with Snort's values,
    # so Snort community rules load without a vars: section.
    "SIP_SERVERS": "$HOME_NET",
    "SSH_SERVERS": "$HOME_NET",
    "FTP_SERVERS": "$HOME_NET",
    "SIP_PORTS": "[5060,5061,5600]",
    "MAIL_PORTS": "[110,143]",
    "GTP_PORTS": "[2123,2152,3386]",
    "RPC_PORTS": "[111,32770:32779]",
}

PROTOCOLS: dict[str, tuple[int | None, AppProto]] = {
    "ip": (None, AppProto.NONE),
    "tcp": (PROTO_TCP, AppProto.NONE),
    "udp": (PROTO_UDP, AppProto.NONE),
    "icmp": (PROTO_ICMP, AppProto.NONE),
    "icmpv6": (PROTO_ICMPV6, AppProto.NONE),
    "http": (PROTO_TCP, AppProto.HTTP),
    "tls": (PROTO_TCP, AppProto.TLS),
    "dns": (None, AppProto.DNS),  # UDP or TCP
}

ACTIONS = {
    "alert": Action.ACCEPT,
    "rewrite": Action.REWRITE,
    "drop": Action.DROP,
    "reject": Action.REJECT,
    "block": Action.BLOCK,
}

DEFAULT_BLOCK_SECONDS = 600

TOP_KEYS = {"vars", "allowlist", "include", "policy", "signatures", "rate", "normalize"}
NORMALIZE_KEYS = {"tcp_mss_max", "ttl_min", "ttl_set"}
COMMON_KEYS = {
    "sid",
    "rev",
    "gid",
    "msg",
    "classtype",
    "priority",
    "action",
    "block_for",
    "proto",
    "src",
    "src_port",
    "dst",
    "dst_port",
    "flags",
    "icmp_type",
    "icmp_code",
}
SIGNATURE_KEYS = COMMON_KEYS | {"bidirectional", "flow", "metadata"} | {b.value for b in Buffer}
RATE_KEYS = COMMON_KEYS | {"key", "measure", "window", "threshold", "flow"}
CONTENT_KEYS = {"content", "nocase", "offset", "depth", "distance", "within", "negate", "replace"}
REGEX_KEYS = {"regex", "nocase", "negate", "relative"}
MAX_RE2_MEMORY = 8 << 20


_SetT = TypeVar("_SetT", AddressSet, PortSet)


class RulesError(Exception):
    """One or more problems in rule files; ``errors`` lists each as ``file:line: rule N: what``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class _Map(dict[str, Any]):
    """A YAML mapping that remembers its own line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[str, int]
    duplicates: list[tuple[str, int]]  # (key, line) of each repeated key


# libyaml's C parser when PyYAML was built with it (about 10x faster on big
# rule files); the constructors, which record line numbers, stay in Python.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    m = _Map()
    m.line = node.start_mark.line + 1
    m.key_lines = {}
    m.duplicates = []
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = str(loader.construct_object(key_node, deep=True))
        line = key_node.start_mark.line + 1
        if key in m:
            # YAML would silently keep the last one; a rule with two actions is a mistake.
            m.duplicates.append((key, line))
        m[key] = loader.construct_object(value_node, deep=True)
        m.key_lines.setdefault(key, line)
    return m


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


class _Ctx:
    """Collects errors for one file, each prefixed with the file, the line and the rule."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[str] = []

    def error(self, line: int, what: str, sid: object = None) -> None:
        rule = f" rule {sid}:" if sid is not None else ""
        self.errors.append(f"{self.path}:{line}:{rule} {what}")


def _suggest(word: str, known: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_rules_yaml(path: str | Path, extra_vars: Mapping[str, str] | None = None) -> RuleSet:
    """Parse one rules.yaml file; raise :class:`RulesError` listing every problem found."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError([f"{p}: cannot read: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise RulesError([f"{p}: not UTF-8 text: {e}"]) from None
    return load_rules_text(text, str(p), base_dir=p.parent, extra_vars=extra_vars)


def load_rules_text(
    text: str,
    name: str = "<rules>",
    base_dir: Path | None = None,
    extra_vars: Mapping[str, str] | None = None,
) -> RuleSet:
    ctx = _Ctx(name)
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(e, "problem", None) or str(e)
        raise RulesError([f"{name}:{line}: YAML syntax error: {problem}"]) from None
    if doc is None:
        doc = _Map()
        doc.key_lines = {}
        doc.duplicates = []
    if not isinstance(doc, _Map):
        raise RulesError([f"{name}:1: the top level must be a mapping with keys {sorted(TOP_KEYS)}"])
    for key, line in doc.duplicates:
        ctx.error(
            line,
            f"top-level key '{key}' given twice (first at line {doc.key_lines[key]}); "
            "the first one's rules would be lost",
        )
    for key in doc:
        if key not in TOP_KEYS:
            ctx.error(doc.key_lines[key], f"unknown top-level key '{key}'{_suggest(key, TOP_KEYS)}")

    variables = dict(DEFAULT_VARS)
    raw_vars = doc.get("vars") or {}
    if not isinstance(raw_vars, dict):
        ctx.error(doc.key_lines.get("vars", 1), "'vars' must be a mapping of NAME: value")
        raw_vars = {}
    for k, v in raw_vars.items():
        variables[str(k)] = _var_text(v)
    for k, v in (extra_vars or {}).items():
        variables[k] = v
    for k, v in variables.items():
        try:
            parse_ports(v, variables) if k.endswith("_PORTS") else parse_addresses(v, variables)
        except SetSyntaxError as e:
            line = raw_vars.key_lines.get(k, doc.line) if isinstance(raw_vars, _Map) else 1
            ctx.error(line, f"variable {k}: {e}")

    allow: AddressSet | None = None
    raw_allow = doc.get("allowlist")
    if raw_allow is not None:
        try:
            allow = parse_addresses(_var_text(raw_allow), variables)
        except SetSyntaxError as e:
            ctx.error(doc.key_lines["allowlist"], f"allowlist: {e}")

    includes: list[str] = []
    raw_inc = doc.get("include") or []
    if isinstance(raw_inc, str):
        raw_inc = [raw_inc]
    if not isinstance(raw_inc, list):
        ctx.error(doc.key_lines.get("include", 1), "'include' must be a list of .rules files")
        raw_inc = []
    for inc in raw_inc:
        inc_path = Path(str(inc))
        if not inc_path.is_absolute() and base_dir is not None:
            inc_path = base_dir / inc_path
        if any(ch in inc_path.name for ch in "*?["):
            found = sorted(str(x) for x in inc_path.parent.glob(inc_path.name) if x.is_file())
            if not found:
                ctx.error(doc.key_lines["include"], f"include: {inc_path}: matches no file")
            includes.extend(found)
            continue
        if not inc_path.is_file():
            ctx.error(doc.key_lines["include"], f"include: {inc_path}: no such file")
        includes.append(str(inc_path))
    policy = _policy(doc, ctx)

    normalize = _normalize(doc, ctx)
    sigs = _load_list(doc, "signatures", ctx, lambda m: _signature(m, variables, ctx))
    rates = _load_list(doc, "rate", ctx, lambda m: _rate(m, variables, ctx))

    seen: dict[int, int] = {}
    for rule in (*sigs, *rates):
        if rule.sid in seen:
            ctx.error(rule.origin.line, f"duplicate sid (also at line {seen[rule.sid]})", rule.sid)
        seen[rule.sid] = rule.origin.line
    if ctx.errors:
        raise RulesError(ctx.errors)
    return RuleSet(
        signatures=tuple(sigs),
        rates=tuple(rates),
        allowlist=allow,
        variables=variables,
        includes=tuple(includes),
        sources=(name,),
        normalize=normalize,
        policy=policy,
    )


def _policy(doc: _Map, ctx: _Ctx) -> Policy:
    raw = doc.get("policy")
    if raw is None:
        return Policy()
    line = doc.key_lines["policy"]
    if not isinstance(raw, _Map):
        ctx.error(line, f"'policy' must be a mapping with keys {', '.join(POLICY_KEYS)} (and block_for)")
        return Policy()
    body = {k: v for k, v in raw.items() if k != "block_for"}
    seconds = DEFAULT_BLOCK_SECONDS
    if "block_for" in raw:
        try:
            seconds = max(1, int(parse_duration(raw["block_for"])))
        except ValueError as e:
            ctx.error(raw.key_lines.get("block_for", line), f"policy: block_for: {e}")
    policy, problems = parse_policy(body, seconds)
    for problem in problems:
        key = problem.split(":", 1)[0].split(" ")[-1].strip("'")
        ctx.error(raw.key_lines.get(key, line), f"policy: {problem}")
    return policy


def _normalize(doc: _Map, ctx: _Ctx) -> Normalize:
    raw = doc.get("normalize")
    if raw is None:
        return Normalize()
    line = doc.key_lines["normalize"]
    if not isinstance(raw, _Map):
        ctx.error(line, "'normalize' must be a mapping with tcp_mss_max, ttl_min, ttl_set")
        return Normalize()
    values: dict[str, int] = {}
    limits = {"tcp_mss_max": (536, 65535), "ttl_min": (1, 255), "ttl_set": (1, 255)}
    for k, v in raw.items():
        kl = raw.key_lines.get(k, line)
        if k not in NORMALIZE_KEYS:
            ctx.error(kl, f"normalize: unknown key '{k}'{_suggest(k, NORMALIZE_KEYS)}")
            continue
        lo, hi = limits[k]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            ctx.error(kl, f"normalize: '{k}' must be an integer from {lo} to {hi}, got {v!r}")
            continue
        values[k] = v
    if "ttl_set" in values and "ttl_min" not in values:
        ctx.error(line, "normalize: 'ttl_set' needs 'ttl_min' (packets below it get ttl_set)")
    if "ttl_min" in values and values.get("ttl_set", 64) < values["ttl_min"]:
        ctx.error(line, "normalize: 'ttl_set' must not be below 'ttl_min'")
    return Normalize(**values)


def _var_text(v: object) -> str:
    if isinstance(v, list):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)


def _load_list(doc: _Map, key: str, ctx: _Ctx, build: Callable[[_Map], Any]) -> list[Any]:
    raw = doc.get(key) or []
    if not isinstance(raw, list):
        ctx.error(doc.key_lines.get(key, 1), f"'{key}' must be a list of rules")
        return []
    out = []
    for item in raw:
        if not isinstance(item, _Map):
            ctx.error(doc.key_lines[key], f"every entry of '{key}' must be a mapping, got {item!r}")
            continue
        before = len(ctx.errors)
        rule = build(item)
        if rule is not None and len(ctx.errors) == before:
            out.append(rule)
    return out


class _Fields:
    """Typed access to one rule's mapping that records errors instead of raising."""

    def __init__(self, m: _Map, ctx: _Ctx, known: set[str]) -> None:
        self.m = m
        self.ctx = ctx
        sid = m.get("sid")
        self.sid: int = sid if isinstance(sid, int) and not isinstance(sid, bool) and sid > 0 else 0
        if not self.sid:
            ctx.error(
                m.line, f"'sid' must be a positive integer, got {sid!r}", sid if sid is not None else "?"
            )
        for k in m:
            if k not in known:
                self.err(k, f"unknown key '{k}'{_suggest(k, known)}")
        for k, line in getattr(m, "duplicates", ()):
            ctx.error(line, f"key '{k}' given twice (first at line {m.key_lines[k]})", self.sid or "?")

    def line(self, key: str | None = None) -> int:
        return self.m.key_lines.get(key, self.m.line) if key else self.m.line

    def err(self, key: str | None, what: str) -> None:
        self.ctx.error(self.line(key), what, self.sid or "?")

    def get_int(self, key: str, default: int | None, lo: int = 0, hi: int = 2**63) -> int | None:
        v = self.m.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.err(key, f"'{key}' must be an integer from {lo} to {hi}, got {v!r}")
            return default
        return v

    def get_str(self, key: str, default: str = "", required: bool = False) -> str:
        if key not in self.m:
            if required:
                self.err(None, f"missing required key '{key}'")
            return default
        v = self.m[key]
        if not isinstance(v, str) or not v.strip():
            self.err(key, f"'{key}' must be a non-empty string, got {v!r}")
            return default
        return v

    def identity(self, default_priority: int) -> dict[str, Any]:
        """Where the rule is and the fields both kinds of rule share (Suricata's defaults)."""
        return {
            "origin": Origin(self.ctx.path, self.m.line),
            "rev": self.get_int("rev", 1, 1) or 1,
            "gid": self.get_int("gid", 1, 1) or 1,
            "classtype": self.get_str("classtype", ""),
            "priority": self.get_int("priority", default_priority, 1, 255) or default_priority,
        }

    def action(self) -> RuleAction:
        name = self.m.get("action", "alert")
        if not isinstance(name, str) or name not in ACTIONS:
            self.err("action", f"unknown action {name!r}; use one of {', '.join(ACTIONS)}")
            return RuleAction(Action.ACCEPT)
        act = ACTIONS[name]
        block = 0
        if "block_for" in self.m:
            if act is not Action.BLOCK:
                self.err("block_for", "'block_for' only applies to action: block")
            try:
                block = max(1, int(parse_duration(self.m["block_for"])))
            except ValueError as e:
                self.err("block_for", str(e))
        elif act is Action.BLOCK:
            block = DEFAULT_BLOCK_SECONDS
        return RuleAction(act, block)

    def header(self, variables: Mapping[str, str]) -> Header:
        proto_name = str(self.m.get("proto", "ip")).lower()
        if proto_name not in PROTOCOLS:
            self.err("proto", f"unknown proto {proto_name!r}; use one of {', '.join(PROTOCOLS)}")
            proto_name = "ip"
        proto, app = PROTOCOLS[proto_name]
        src = self._addr("src", variables)
        dst = self._addr("dst", variables)
        sport = self._port("src_port", variables)
        dport = self._port("dst_port", variables)
        if (
            (sport is not ANY_PORT or dport is not ANY_PORT)
            and proto not in (PROTO_TCP, PROTO_UDP)
            and (app is not AppProto.DNS)
        ):
            self.err(
                "dst_port" if "dst_port" in self.m else "src_port",
                f"ports need proto tcp, udp or an app protocol, not {proto_name}",
            )
        flags = None
        if "flags" in self.m:
            if proto != PROTO_TCP:
                self.err("flags", "'flags' needs proto tcp (or http/tls)")
            try:
                flags = parse_flags(str(self.m["flags"]))
            except ValueError as e:
                self.err("flags", str(e))
        icmp_type = self.get_int("icmp_type", None, 0, 255)
        icmp_code = self.get_int("icmp_code", None, 0, 255)
        if (icmp_type is not None or icmp_code is not None) and proto not in (PROTO_ICMP, PROTO_ICMPV6):
            self.err(
                "icmp_type" if icmp_type is not None else "icmp_code",
                "ICMP type/code need proto icmp or icmpv6",
            )
        return Header(
            proto=proto,
            app=app,
            src=src,
            sport=sport,
            dst=dst,
            dport=dport,
            bidirectional=bool(self.m.get("bidirectional", False)),
            flags=flags,
            icmp_type=icmp_type,
            icmp_code=icmp_code,
        )

    def _addr(self, key: str, variables: Mapping[str, str]) -> AddressSet:
        return self._set(key, variables, parse_addresses, ANY_ADDRESS, "address")

    def _port(self, key: str, variables: Mapping[str, str]) -> PortSet:
        return self._set(key, variables, parse_ports, ANY_PORT, "port")

    def _set(
        self,
        key: str,
        variables: Mapping[str, str],
        parse: Callable[[str, Mapping[str, str]], _SetT],
        default: _SetT,
        what: str,
    ) -> _SetT:
        if key not in self.m:
            return default
        try:
            value = parse(_var_text(self.m[key]), variables)
        except SetSyntaxError as e:
            self.err(key, f"{key}: {e}")
            return default
        if value.is_empty:
            self.err(key, f"{key}: {value.text!r} matches no {what}, so the rule could never fire")
        return value


def _signature(m: _Map, variables: Mapping[str, str], ctx: _Ctx) -> SignatureRule | None:
    f = _Fields(m, ctx, SIGNATURE_KEYS)
    msg = f.get_str("msg", required=True)
    action = f.action()
    header = f.header(variables)
    flow = _flow(f)
    buffers: list[BufferMatch] = []
    for buf in Buffer:
        if buf.value not in m:
            continue
        if buf.is_http and header.app is not AppProto.HTTP:
            f.err(buf.value, f"'{buf.value}' needs proto: http")
        elif buf is Buffer.DNS_QUERY and header.app is not AppProto.DNS:
            f.err(buf.value, "'dns.query' needs proto: dns")
        elif buf is Buffer.TLS_SNI and header.app is not AppProto.TLS:
            f.err(buf.value, "'tls.sni' needs proto: tls")
        matches = _matches(f, buf, m[buf.value])
        if matches:
            buffers.append(BufferMatch(buf, tuple(matches)))
    has_replace = any(isinstance(x, Content) and x.replace is not None for b in buffers for x in b.matches)
    if has_replace and action.action is not Action.REWRITE:
        f.err("action", "a content with 'replace' needs action: rewrite")
    if action.action is Action.REWRITE and not has_replace:
        f.err("action", "action: rewrite needs a payload content with 'replace'")
    metadata: dict[str, list[str]] = {}
    raw_meta = m.get("metadata") or {}
    if not isinstance(raw_meta, dict):
        f.err("metadata", "'metadata' must be a mapping of key: value or key: [values]")
    else:
        for k, v in raw_meta.items():
            metadata[str(k)] = [str(x) for x in v] if isinstance(v, list) else [str(v)]
    return SignatureRule(
        sid=f.sid,
        msg=msg,
        action=action,
        header=header,
        **f.identity(default_priority=3),
        flow=flow,
        buffers=tuple(buffers),
        metadata=metadata,
    )


def _flow(f: _Fields) -> FlowMatch:
    raw = f.m.get("flow")
    if raw is None:
        return FlowMatch()
    words = raw if isinstance(raw, list) else str(raw).split(",")
    to_server: bool | None = None
    established: bool | None = None
    for w in (str(x).strip().lower() for x in words):
        if w in ("to_server", "from_client"):
            to_server = True
        elif w in ("to_client", "from_server"):
            to_server = False
        elif w == "established":
            established = True
        elif w == "not_established":
            established = False
        elif w != "stateless":
            f.err(
                "flow", f"unknown flow option {w!r}; use to_server, to_client, established, not_established"
            )
    return FlowMatch(to_server, established)


def _matches(f: _Fields, buf: Buffer, raw: object) -> list[Match]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[Match] = []
    key = buf.value
    for raw_item in items:
        item = {"content": raw_item} if isinstance(raw_item, str) else raw_item
        if not isinstance(item, dict):
            f.err(key, f"{key}: each entry must be a string or a mapping with 'content' or 'regex'")
            continue
        if "content" in item:
            c = _content(f, key, item, buf)
            if c is not None:
                out.append(c)
        elif "regex" in item:
            r = _regex(f, key, item)
            if r is not None:
                out.append(r)
        else:
            f.err(key, f"{key}: entry {dict(item)!r} has neither 'content' nor 'regex'")
    if out and all(getattr(x, "negated", False) for x in out):
        pass  # a buffer of only negations is legitimate ("URI does not contain X")
    return out


def _content(f: _Fields, key: str, item: dict[str, Any], buf: Buffer) -> Content | None:
    for k in item:
        if k not in CONTENT_KEYS:
            f.err(key, f"{key}: unknown content option '{k}'{_suggest(k, CONTENT_KEYS)}")
    try:
        pattern = parse_content(str(item["content"]))
    except ValueError as e:
        f.err(key, f"{key}: {e}")
        return None
    nums: dict[str, int | None] = {}
    for k in ("offset", "depth", "distance", "within"):
        v = item.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or (k != "distance" and v < 0)):
            f.err(key, f"{key}: '{k}' must be an integer, got {v!r}")
            v = None
        nums[k] = v
    if nums["depth"] is not None and nums["depth"] < len(pattern):
        f.err(key, f"{key}: depth {nums['depth']} is shorter than the content ({len(pattern)} bytes)")
    if nums["within"] is not None and nums["within"] < len(pattern):
        f.err(key, f"{key}: within {nums['within']} is shorter than the content ({len(pattern)} bytes)")
    if (nums["offset"] is not None or nums["depth"] is not None) and (
        nums["distance"] is not None or nums["within"] is not None
    ):
        f.err(key, f"{key}: offset/depth cannot be mixed with distance/within on one content")
    replace = None
    if "replace" in item:
        try:
            replace = parse_content(str(item["replace"]))
        except ValueError as e:
            f.err(key, f"{key}: replace: {e}")
        if replace is not None and len(replace) != len(pattern):
            f.err(
                key,
                f"{key}: replace must be as long as the content ({len(pattern)} bytes), got {len(replace)}",
            )
        if buf is not Buffer.PAYLOAD:
            f.err(key, f"{key}: replace only works on the payload buffer")
        if item.get("negate"):
            f.err(key, f"{key}: a negated content cannot be replaced")
    return Content(
        pattern=pattern,
        nocase=bool(item.get("nocase", False)),
        negated=bool(item.get("negate", False)),
        offset=nums["offset"],
        depth=nums["depth"],
        distance=nums["distance"],
        within=nums["within"],
        replace=replace,
    )


def compile_regex(source: str, nocase: bool = False) -> Any:
    """Compile for bytes with RE2 (linear time: no catastrophic backtracking). Raises ValueError."""
    opts = re2.Options()
    opts.max_mem = MAX_RE2_MEMORY
    opts.log_errors = False  # the error is reported with file, line and rule instead
    opts.case_sensitive = not nocase
    opts.encoding = re2.Options.Encoding.LATIN1
    opts.dot_nl = False
    try:
        return re2.compile(source.encode("latin-1", "backslashreplace"), options=opts)
    except re2.error as e:
        raise ValueError(f"regex {source!r} is not valid RE2 syntax: {e}") from None


def _regex(f: _Fields, key: str, item: dict[str, Any]) -> Regex | None:
    for k in item:
        if k not in REGEX_KEYS:
            f.err(key, f"{key}: unknown regex option '{k}'{_suggest(k, REGEX_KEYS)}")
    source = str(item["regex"])
    try:
        compiled = compile_regex(source, bool(item.get("nocase", False)))
    except ValueError as e:
        f.err(key, f"{key}: {e}")
        return None
    return Regex(source, compiled, bool(item.get("negate", False)), bool(item.get("relative", False)))


def _rate(m: _Map, variables: Mapping[str, str], ctx: _Ctx) -> RateRule | None:
    f = _Fields(m, ctx, RATE_KEYS)
    msg = f.get_str("msg", required=True)
    action = f.action()
    header = f.header(variables)
    key_name = str(m.get("key", "src"))
    try:
        key = RateKey(key_name)
    except ValueError:
        f.err("key", f"unknown key {key_name!r}; use one of {', '.join(k.value for k in RateKey)}")
        key = RateKey.SRC
    measure_name = str(m.get("measure", "packets"))
    try:
        measure = Measure(measure_name)
    except ValueError:
        f.err(
            "measure", f"unknown measure {measure_name!r}; use one of {', '.join(x.value for x in Measure)}"
        )
        measure = Measure.PACKETS
    if action.action is Action.BLOCK and key not in (RateKey.SRC, RateKey.SRC_DST):
        f.err(
            "action",
            f"action: block needs key src or src+dst (with key {key.value} the sources are "
            "often spoofed, and blocking them would punish bystanders); use drop",
        )
    if action.action in (Action.REWRITE,):
        f.err("action", "a rate rule cannot rewrite; use alert, drop, reject or block")
    if measure is Measure.SYNS and header.proto not in (None, PROTO_TCP):
        f.err("measure", "measure syns needs proto tcp")
    if measure is Measure.DNS_RESPONSE_BYTES and header.app is not AppProto.DNS:
        f.err("measure", "measure dns_response_bytes needs proto: dns")
    if measure is Measure.EMPTY_CONNECTIONS and header.proto != PROTO_TCP:
        f.err("measure", "measure empty_connections needs proto tcp")
    window = 1.0
    if "window" not in m:
        f.err(None, "missing required key 'window'")
    else:
        try:
            window = parse_duration(m["window"])
        except ValueError as e:
            f.err("window", str(e))
    threshold = f.get_int("threshold", None, 1)
    if threshold is None:
        f.err(None, "missing required key 'threshold'")
        threshold = 1
    return RateRule(
        sid=f.sid,
        msg=msg,
        action=action,
        header=header,
        key=key,
        measure=measure,
        window=window,
        threshold=threshold,
        **f.identity(default_priority=2),
        flow=_flow(f),
    )
