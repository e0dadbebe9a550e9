"""Generate nbkube/apiserver/protobuf_schema.py: the protobuf field table of every kind nbkube serves.

Kubernetes' protobuf encoding is defined by the generated.proto files of k8s.io/api and
k8s.io/apimachinery. Every Go binary built with client-go (kubectl among them) embeds those files as
gzipped FileDescriptorProtos, so this script reads them out of a kubectl binary instead of from a
checkout: it scans the binary for gzip streams that parse as descriptors of `k8s.io/...` files,
walks the messages reachable from the kinds in nbkube.api.kinds and the versions served by conversion (plus their lists, Status,
DeleteOptions, Eviction, Binding, Scale, TokenRequest, the reviews and WatchEvent) and writes field number ->
(JSON name, type, cardinality) as a Python literal. Only numbers, names and types are taken.

    PYTHONPATH=$PWD python scripts/gen_protobuf_schema.py /usr/lib/google-cloud-sdk/bin/kubectl.1.33

Needs the `protobuf` package (etcd3 already depends on it) only here, not at run time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zlib
from typing import Any

from google.protobuf import descriptor_pb2

from nbkube.api.kinds import KINDS
from nbkube.apiserver.conversion import CONVERTED
from nbkube.apiserver.routing import REVIEW_KINDS

OUT = os.path.join(os.path.dirname(__file__), "..", "nbkube", "apiserver", "protobuf_schema.py")

# messages the codec maps to a JSON scalar of their own (see nbkube/apiserver/protobuf.py)
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
    # Go's `type ExtraValue []string`: a message around a list, a plain list in JSON
    "k8s.io.api.authentication.v1.ExtraValue": "StringList",
    "k8s.io.api.authorization.v1.ExtraValue": "StringList",
}
SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
}
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
# (apiVersion, kind) -> message, beyond the served kinds and their lists
EXTRA_ROOTS = {
    ("v1", "Status"): f"{META}.Status",
    ("meta.k8s.io/v1", "Status"): f"{META}.Status",
    # client-go labels DeleteOptions with either group version, depending on the call
    ("v1", "DeleteOptions"): f"{META}.DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): f"{META}.DeleteOptions",
    ("meta.k8s.io/v1", "WatchEvent"): f"{META}.WatchEvent",
    ("policy/v1", "Eviction"): "k8s.io.api.policy.v1.Eviction",
    ("policy/v1beta1", "Eviction"): "k8s.io.api.policy.v1beta1.Eviction",
    ("v1", "Binding"): "k8s.io.api.core.v1.Binding",
    ("autoscaling/v1", "Scale"): "k8s.io.api.autoscaling.v1.Scale",
    ("authentication.k8s.io/v1", "TokenRequest"): "k8s.io.api.authentication.v1.TokenRequest",
}


def group_version_package(api_version: str) -> str:
    """The proto package of an API group version ("apps/v1" -> k8s.io.api.apps.v1)."""
    if "/" not in api_version:
        return f"k8s.io.api.core.{api_version}"
    group, version = api_version.split("/")
    return f"k8s.io.api.{group.split('.')[0]}.{version}"


def descriptors(binary: str) -> dict[str, descriptor_pb2.DescriptorProto]:
    with open(binary, "rb") as f:
        data = f.read()
    out: dict[str, descriptor_pb2.DescriptorProto] = {}
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
    pos = 0
    while (i := data.find(gzip_header, pos)) >= 0:
        pos = i + 1
        try:
            raw = zlib.decompressobj(31).decompress(data[i : i + 4_000_000])
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:  # not a descriptor: some other gzip stream, or bytes that only look like one
            continue
        if not fd.name.startswith("k8s.io/"):
            continue

        def add(prefix: str, messages: Any) -> None:
            for m in messages:
                out[f"{prefix}.{m.name}"] = m
                add(f"{prefix}.{m.name}", m.nested_type)

        add(fd.package, fd.message_type)
    return out


_VARINT_TAG = re.compile(
    rb'json:"(\w+)(,omitempty)?" protobuf:"varint,(\d+),(?:opt|rep),name=(\w+)[^"]*"'
)


def non_pointer_omitempty(data: bytes) -> set[tuple[str, int]]:
    """(JSON name, field number) of the integer and boolean Go struct fields that are not pointers and
    are `omitempty`: their zero value is what Go writes for "unset", and what its JSON leaves out.

    Read from the binary's reflection data: each struct field's name data (flags, name, then the
    struct tag) is referenced by a reflect StructField {name, type, offset}, whose type's kind byte
    (offset 23 of abi.Type on 64-bit) says Pointer (22) or not. A pair whose fields disagree (one
    struct has a pointer, another not) is left out: its zero may be meaningful."""
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize, shnum = (int.from_bytes(data[i : i + 2], "little") for i in (0x3A, 0x3C))
    sections = []
    for i in range(shnum):
        base = shoff + i * shentsize
        addr, off, size = (int.from_bytes(data[base + j : base + j + 8], "little") for j in (16, 24, 32))
        nobits = int.from_bytes(data[base + 4 : base + 8], "little") == 8  # .bss: not in the file
        if addr and not nobits:
            sections.append((addr, off, size))

    def to_addr(offset: int) -> int | None:
        return next((a + offset - o for a, o, n in sections if o <= offset < o + n), None)

    def to_offset(addr: int) -> int | None:
        return next((o + addr - a for a, o, n in sections if a <= addr < a + n), None)

    names: dict[int, tuple[str, int, bool]] = {}
    for m in _VARINT_TAG.finditer(data):
        tag_len_at = m.start() - 1  # the tags here are shorter than 128 bytes: a one-byte length
        for n in range(1, 80):
            p = tag_len_at - n
            if data[p - 1] == n and data[p - 2] & 2 and data[p : p + 1].isupper():
                addr = to_addr(p - 2)
                if addr is not None:
                    names[addr] = (m.group(1).decode(), int(m.group(3)), bool(m.group(2)))
                break
    kinds: dict[tuple[str, int], set[bool]] = {}
    omit: dict[tuple[str, int], bool] = {}
    for _a, o, n in sections:
        words = memoryview(data)[o : o + n // 8 * 8].cast("Q")
        for i in range(len(words) - 1):
            found = names.get(words[i])
            if found is None:
                continue
            t = to_offset(words[i + 1])
            if t is None:
                continue
            key = (found[0], found[1])
            kinds.setdefault(key, set()).add(data[t + 23] & 0x1F == 22)
            omit[key] = omit.get(key, True) and found[2]
    return {key for key, pointer in kinds.items() if pointer == {False} and omit[key]}


_INLINE_TAG = re.compile(rb'json:",inline[^"]*" protobuf:"bytes,(\d+),[^"]*?(?:name=(\w+))?"')


def inline_fields(data: bytes) -> set[tuple[str, int]]:
    """(proto name, number) of the message fields Go embeds with `json:",inline"` (Probe's handler,
    Volume's volumeSource, ...): their fields sit in the parent's JSON object. A tag without a name
    (EphemeralContainer's common part) gets the proto name go-to-protobuf derives from the Go field's
    name, which precedes the tag in the reflection name data."""
    out = set()
    for m in _INLINE_TAG.finditer(data):
        name = (m.group(2) or b"").decode()
        if not name:
            tag_len_at = m.start() - 1
            for n in range(1, 80):
                p = tag_len_at - n
                if data[p - 1] == n and data[p - 2] & 2 and data[p : p + 1].isupper():
                    go_name = data[p:tag_len_at].decode()
                    name = go_name[:1].lower() + go_name[1:]
                    break
        if name:
            out.add((name, int(m.group(1))))
    return out


_TAG = re.compile(rb'json:"([\w-]*)[^"]*" protobuf:"\w+,(\d+),(?:opt|rep|req)[^"]*?name=(\w+)')


def json_names(data: bytes) -> dict[tuple[str, int], set[str]]:
    """(proto name, number) -> the JSON names Go's struct tags give it: go-to-protobuf names some
    fields its own way (BoundObjectReference's `uid` is `uID` in the .proto)."""
    out: dict[tuple[str, int], set[str]] = {}
    for m in _TAG.finditer(data):
        if m.group(1):
            out.setdefault((m.group(3).decode(), int(m.group(2))), set()).add(m.group(1).decode())
    return out


def short(name: str) -> str:
    """k8s.io.api.core.v1.Pod -> core.v1.Pod; k8s.io.apimachinery.pkg.apis.meta.v1.X -> meta.v1.X."""
    return re.sub(r"^k8s\.io\.(api\.|apimachinery\.pkg\.apis\.|apimachinery\.pkg\.)", "", name)


def main(binary: str, out: str = OUT) -> None:
    msgs = descriptors(binary)
    with open(binary, "rb") as f:
        data = f.read()
    zero_absent = non_pointer_omitempty(data)
    inline = inline_fields(data)
    tags = json_names(data)

    def json_name(f: Any) -> str:
        proto_name = f.json_name or f.name
        names = tags.get((proto_name, f.number), {proto_name})
        if len(names) != 1:
            if proto_name in names:
                return str(proto_name)
            raise SystemExit(f"{proto_name} = {f.number}: Go's JSON names disagree: {sorted(names)}")
        return next(iter(names))

    roots: dict[tuple[str, str], str] = {}
    for info in (*KINDS, *REVIEW_KINDS, *(c.info for c in CONVERTED)):
        pkg = group_version_package(info.api_version)
        roots[(info.api_version, info.kind)] = f"{pkg}.{info.kind}"
        if f"{pkg}.{info.kind}List" in msgs:
            roots[(info.api_version, f"{info.kind}List")] = f"{pkg}.{info.kind}List"
    roots.update(EXTRA_ROOTS)
    table: dict[str, dict[int, tuple[str, str, int]]] = {}
    zero_is_absent: dict[str, list[int]] = {}
    todo = sorted(set(roots.values()))
    while todo:
        name = todo.pop()
        if name in table or name in SPECIAL:
            continue
        if name not in msgs:
            raise SystemExit(f"{binary} has no descriptor for {name}")
        fields: dict[int, tuple[str, str, int]] = {}
        for f in msgs[name].field:
            card = 1 if f.label == f.LABEL_REPEATED else 0
            if f.type == f.TYPE_MESSAGE:
                target = f.type_name.lstrip(".")
                entry = msgs.get(target)
                if entry is not None and entry.options.map_entry:
                    key, value = entry.field[0], entry.field[1]
                    assert key.type == key.TYPE_STRING, f"{name}.{f.name}: a map keyed by non-strings"
                    card = 2
                    if value.type == value.TYPE_MESSAGE:
                        target = value.type_name.lstrip(".")
                    else:
                        fields[f.number] = (json_name(f), SCALARS[value.type], card)
                        continue
                kind = SPECIAL.get(target) or short(target)
                if target not in SPECIAL:
                    todo.append(target)
                if card == 0 and (f.json_name or f.name, f.number) in inline:
                    card = 3
                fields[f.number] = (json_name(f) if card != 3 else f.json_name or f.name, kind, card)
            else:
                fields[f.number] = (json_name(f), SCALARS[f.type], card)
        table[name] = fields
        omitted = sorted(n for n, (j, k, card) in fields.items() if card == 0 and (j, n) in zero_absent)
        if omitted:
            zero_is_absent[name] = omitted
    version = subprocess.run([binary, "version", "--client", "-o", "yaml"], capture_output=True, text=True)
    git = re.search(r"gitVersion: (\S+)", version.stdout)
    lines = [
        '"""The protobuf schema of every kind nbkube serves: message -> field number -> (JSON name, type,',
        "cardinality), for the generic codec in nbkube/apiserver/protobuf.py.",
        "",
        "GENERATED by scripts/gen_protobuf_schema.py from the k8s.io/api and k8s.io/apimachinery",
        f"generated.proto descriptors embedded in kubectl {git.group(1) if git else '(unknown version)'}; do not edit,",
        "run the script again. Types: a scalar (string, bytes, int32, int64, uint32, uint64, bool, double, float),",
        "a codec-level scalar (Time, MicroTime, Duration, FieldsV1, IntOrString, Quantity, RawExtension, StringList)",
        "or",
        "another message of this table. Cardinality: 0 one value, 1 repeated, 2 map<string, type>, 3 a message",
        'Go embeds with `json:",inline"` (its fields sit in the parent\'s JSON object).',
        "ZERO_IS_ABSENT: the integer and boolean fields that are neither pointers nor without omitempty",
        "in Go, read from the same binary's reflection data: Go writes their zero for unset, and its JSON omits it.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        '__all__ = ["KINDS", "MESSAGES", "ZERO_IS_ABSENT"]',
        "",
        "# fmt: off",
        "MESSAGES: dict[str, dict[int, tuple[str, str, int]]] = {",
    ]
    for name in sorted(table):
        lines.append(f"    {short(name)!r}: {{")
        for number, (json_name, kind, card) in sorted(table[name].items()):
            lines.append(f"        {number}: ({json_name!r}, {kind!r}, {card}),")
        lines.append("    },")
    lines.append("}")
    lines.append("")
    lines.append("ZERO_IS_ABSENT: dict[str, frozenset[int]] = {")
    for name in sorted(zero_is_absent):
        lines.append(f"    {short(name)!r}: frozenset({zero_is_absent[name]!r}),")
    lines.append("}")
    lines.append("")
    lines.append("# (apiVersion, kind) -> message")
    lines.append("KINDS: dict[tuple[str, str], str] = {")
    for key in sorted(roots):
        lines.append(f"    {key!r}: {short(roots[key])!r},")
    lines.append("}")
    lines.append("# fmt: on")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(table)} messages, {len(roots)} kinds -> {os.path.normpath(out)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
