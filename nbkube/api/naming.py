"""Syntax rules for names, label keys and values, as Kubernetes enforces them.

Each `check_*` function returns a list of human-readable problems (empty when the text is valid), in
the wording Kubernetes uses, so callers can wrap them in a FieldError with the right path. Used by
`validation` (object names, labels, ports) and by `selectors` (label keys and values in selectors).
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
CONFIG_KEY_MAX = 253
IANA_SVC_NAME_MAX = 15

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"^{_DNS1123_LABEL}$")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_DNS1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_VAR_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_IANA_SVC_NAME_RE = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER_RE = re.compile(r"[a-z]")

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')"
)
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')"
)


def _too_long(limit: int) -> str:
    return f"must be no more than {limit} characters"


def check_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(_too_long(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(_LABEL_MSG)
    return errs


def check_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(_too_long(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(_SUBDOMAIN_MSG)
    return errs


def check_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(_too_long(DNS1123_LABEL_MAX))
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(_DNS1035_MSG)
    return errs


def check_path_segment(value: str) -> list[str]:
    """Names that only have to be usable as one URL path segment (Events)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in "/%" if c in value]


def check_qualified_name(value: str) -> list[str]:
    """Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain, name <= 63 characters."""
    prefix, slash, name = value.rpartition("/")
    errs: list[str] = []
    if slash:
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend(f"prefix part {m}" for m in check_dns1123_subdomain(prefix))
        if "/" in prefix:
            return [
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character, with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')"
            ]
    if not name:
        errs.append("name part must be non-empty")
        return errs
    if len(name) > QUALIFIED_NAME_MAX:
        errs.append(f"name part {_too_long(QUALIFIED_NAME_MAX)}")
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append(_QUALIFIED_MSG)
    return errs


def check_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(_too_long(LABEL_VALUE_MAX))
    if value and not _QUALIFIED_NAME_RE.match(value):
        errs.append(_LABEL_VALUE_MSG)
    return errs


def check_config_key(value: str) -> list[str]:
    """Keys of ConfigMap/Secret data: they become file names in volumes."""
    errs = []
    if len(value) > CONFIG_KEY_MAX:
        errs.append(_too_long(CONFIG_KEY_MAX))
    if not _CONFIG_KEY_RE.match(value):
        errs.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
    if value in (".", ".."):
        errs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def check_env_var_name(value: str) -> list[str]:
    if _ENV_VAR_RE.match(value):
        return []
    return [
        "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
        "or '.', and must not start with a digit"
    ]


def check_iana_svc_name(value: str) -> list[str]:
    """Named ports (`containerPort` names, `targetPort: http`): at most 15 chars, one letter at least."""
    errs = []
    if len(value) > IANA_SVC_NAME_MAX:
        errs.append(_too_long(IANA_SVC_NAME_MAX))
    if not _IANA_SVC_NAME_RE.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if not _HAS_LETTER_RE.search(value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def check_port_number(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else ["must be between 1 and 65535, inclusive"]
