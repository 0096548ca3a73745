"""Syntax rules for names, as Kubernetes and Gateway API define them.

Each rule takes a string and returns None when it is valid, else a message that states the rule and
the offending value, so validators can pass rules around (`Check.string(..., rule=dns1123_label)`).
Rules mirror k8s.io/apimachinery/pkg/util/validation so a manifest nodemesh accepts is one a real
API server accepts too.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PORT_NAME = re.compile(r"[-a-z0-9]+")
_HTTP_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_WILDCARD_HOSTNAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")

_LABEL_HELP = "lowercase letters, digits and '-', starting and ending with a letter or digit"


def dns1123_label(value: str) -> str | None:
    """Container names, namespaces, port names of Services."""
    if not value:
        return "must not be empty"
    if len(value) > 63:
        return f"must be at most 63 characters, got {len(value)}"
    if not _DNS1123_LABEL.fullmatch(value):
        return f"must be a DNS-1123 label ({_LABEL_HELP}), got {value!r}"
    return None


def dns1035_label(value: str) -> str | None:
    """Service names: a DNS-1123 label that also starts with a letter (it becomes a DNS name)."""
    problem = dns1123_label(value)
    if problem is None and not _DNS1035_LABEL.fullmatch(value):
        return (
            f"must start with a lowercase letter (Service names are DNS-1035 labels), got {value!r}"
        )
    return problem


def dns1123_subdomain(value: str) -> str | None:
    """Names of most objects: dot-separated DNS-1123 labels, at most 253 characters."""
    if not value:
        return "must not be empty"
    if len(value) > 253:
        return f"must be at most 253 characters, got {len(value)}"
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return f"must be a DNS-1123 subdomain ({_LABEL_HELP}, and '.'), got {value!r}"
    return None


def label_key(value: str) -> str | None:
    """Label and annotation keys: an optional DNS subdomain prefix and '/', then a name <= 63."""
    if value.count("/") > 1:
        return f"key may contain at most one '/', got {value!r}"
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns1123_subdomain(prefix)):
        return f"key prefix must be a DNS-1123 subdomain (like 'example.com/'), got {value!r}"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return (
            "key must be at most 63 characters of letters, digits, '-', '_' and '.', starting and "
            f"ending with a letter or digit, after an optional 'prefix/', got {value!r}"
        )
    return None


def label_value(value: str) -> str | None:
    """Label values: empty, or at most 63 letters, digits, '-', '_', '.' with alphanumeric ends."""
    if value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
        return (
            "label value must be empty or at most 63 characters of letters, digits, '-', '_', '.', "
            f"starting and ending with a letter or digit, got {value!r}"
        )
    return None


def port_name(value: str) -> str | None:
    """IANA_SVC_NAME (container port names, named targetPorts): <= 15 chars, one letter at least."""
    if not value or len(value) > 15:
        return f"port name must be 1 to 15 characters, got {value!r}"
    if not _PORT_NAME.fullmatch(value) or not re.search("[a-z]", value):
        return f"port name must be lowercase letters, digits and '-' with a letter, got {value!r}"
    if "--" in value or value.startswith("-") or value.endswith("-"):
        return f"port name must not start or end with '-' or contain '--', got {value!r}"
    return None


def env_var_name(value: str) -> str | None:
    """Environment variable names: printable ASCII except '=' (Kubernetes' relaxed rule)."""
    if not value:
        return "must not be empty"
    if "=" in value or not all(" " <= char <= "~" for char in value):
        return f"must be printable ASCII without '=', got {value!r}"
    return None


def http_token(value: str) -> str | None:
    """HTTP header and query parameter names (RFC 7230 token)."""
    if not value or len(value) > 256 or not _HTTP_TOKEN.fullmatch(value):
        return f"must be an HTTP token of at most 256 characters (no spaces or ':'), got {value!r}"
    return None


def gateway_hostname(value: str) -> str | None:
    """Gateway API hostnames: a DNS name, optionally with a leading '*.' label; never an IP."""
    if len(value) > 253 or not _WILDCARD_HOSTNAME.fullmatch(value):
        return f"must be a lowercase DNS name, optionally starting with '*.', got {value!r}"
    if ip_address(value) is None:
        return f"must be a DNS name, not an IP address, got {value!r}"
    return None


def ipv4_address(value: str) -> str | None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"must be an IPv4 address like 10.96.0.10, got {value!r}"
    return None


def ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"must be an IP address, got {value!r}"
    return None


def ip_block(value: str) -> str | None:
    """An IP address or a CIDR block (host bits may be set, as Istio allows)."""
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return f"must be an IP address or CIDR block like 10.0.0.0/8, got {value!r}"
    return None


def port_number_string(value: str) -> str | None:
    """Istio writes ports as strings of digits ("8080")."""
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 65535:
        return f"must be a port number between 1 and 65535 written as a string, got {value!r}"
    return None


def non_empty(value: str) -> str | None:
    return "must not be empty" if not value else None
