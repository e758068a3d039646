#!/usr/bin/env python3
"""Generate podnet/api/schema.json: the field schema of the kinds podnet serves.

A dev tool, run by hand after upgrading the `kubernetes` Python client:

    .venv/bin/python tools/gen_schema.py            # rewrite podnet/api/schema.json
    .venv/bin/python tools/gen_schema.py --check    # exit 1 if the committed file is stale

It walks the client's generated models (`openapi_types` gives each attribute's type,
`attribute_map` its JSON name) from the top-level types of the served kinds, collects the
closure of referenced types and writes them in a compact form that podnet.api.schema reads:

    {
      "$source": "tools/gen_schema.py from the kubernetes python client 37.0.2",
      "kinds": {"v1/Service": "core.v1.Service", ...},
      "types": {"core.v1.ServicePort": {"port": "int32", "targetPort": "int-or-string", ...}},
      "required": {"core.v1.ServicePort": ["port"]}
    }

A type is named `<package>.<version>.<GoName>`, where package is `core`, `discovery`,
`networking` (under io.k8s.api) or `meta` (io.k8s.apimachinery.pkg.apis.meta). A field type is
one of the scalars

    string  boolean  int32  int64  date-time  micro-time  int-or-string  quantity  byte  any

(`byte` is a base64 string, `any` free-form JSON), a type name, `[]<field type>` or
`map[string]<field type>`.

The client loses facts the Go types carry; the tables below put them back: int64 fields (the
client says `int` for both widths), resource.Quantity fields (the client says `str`),
MicroTime fields (the client says `datetime` for Time too) and what its `object` fields
really are. The generator fails when a table names a field the client does not have, so the
tables cannot silently rot. (The strategic-merge-patch directives, which the client does not
carry either, live in podnet/api/patch.py's MERGE_KEYS; podnet.api.schema reads them there.)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.client.models as models

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from podnet.api.resources import RESOURCES  # noqa: E402

OUT = ROOT / "podnet" / "api" / "schema.json"

# The client's class for a served kind, where it is not "V1" + kind.
CLASS_OF_KIND = {"Event": "CoreV1Event"}

# Types that live in k8s.io/apimachinery/pkg/apis/meta/v1 rather than in an API group.
META_TYPES = {
    "V1Condition", "V1DeleteOptions", "V1LabelSelector", "V1LabelSelectorRequirement",
    "V1ListMeta", "V1ManagedFieldsEntry", "V1ObjectMeta", "V1OwnerReference", "V1Preconditions",
    "V1ShardInfo", "V1Status", "V1StatusCause", "V1StatusDetails",
}
# Types kept whatever the served kinds reference (the server builds them or reads them).
EXTRA_ROOTS = ("V1ObjectMeta", "V1ListMeta", "V1Status", "V1DeleteOptions")

# Go int64 fields (everything else the client calls `int` is int32).
INT64 = {
    "V1Condition": ("observedGeneration",),
    "V1ClusterTrustBundleProjection": ("user",),
    "V1ConfigMapVolumeSource": ("defaultUser",),
    "V1ContainerImage": ("sizeBytes",),
    "V1DeleteOptions": ("gracePeriodSeconds",),
    "V1DownwardAPIVolumeFile": ("user",),
    "V1DownwardAPIVolumeSource": ("defaultUser",),
    "V1KeyToPath": ("user",),
    "V1LinuxContainerUser": ("gid", "supplementalGroups", "uid"),
    "V1ListMeta": ("remainingItemCount",),
    "V1NodeSwapStatus": ("capacity",),
    "V1ObjectMeta": ("deletionGracePeriodSeconds", "generation"),
    "V1PodCertificateProjection": ("user",),
    "V1PodCondition": ("observedGeneration",),
    "V1PodSecurityContext": ("fsGroup", "runAsGroup", "runAsUser", "supplementalGroups"),
    "V1PodSpec": ("activeDeadlineSeconds", "terminationGracePeriodSeconds"),
    "V1PodStatus": ("observedGeneration",),
    "V1Probe": ("terminationGracePeriodSeconds",),
    "V1ProjectedVolumeSource": ("defaultUser",),
    "V1SecretVolumeSource": ("defaultUser",),
    "V1SecurityContext": ("runAsGroup", "runAsUser"),
    "V1ServiceAccountTokenProjection": ("expirationSeconds",),
    "V1SleepAction": ("seconds",),
    "V1Toleration": ("tolerationSeconds",),
}

# resource.Quantity fields: a string such as "100m" or "1Gi", or a bare number.
# Maps of quantities are v1.ResourceList.
QUANTITY = {
    "V1ContainerStatus": ("allocatedResources",),
    "V1EmptyDirVolumeSource": ("sizeLimit",),
    "V1NodeAllocatableMappedResources": ("quantity",),
    "V1NodeAllocatableOverheadResources": ("perContainer", "perPod"),
    "V1NodeStatus": ("allocatable", "capacity"),
    "V1PodSpec": ("overhead",),
    "V1PodStatus": ("allocatedResources",),
    "V1ResourceFieldSelector": ("divisor",),
    "V1ResourceRequirements": ("limits", "requests"),
    "V1VolumeResourceRequirements": ("limits", "requests"),
}

# metav1.MicroTime fields (RFC 3339 with exactly six fractional digits).
MICRO_TIME = {"CoreV1Event": ("eventTime",), "CoreV1EventSeries": ("lastObservedTime",)}

# Fields the client types as `object`: what they really are.
OBJECT_FIELDS = {
    ("V1HTTPGetAction", "port"): "int-or-string",
    ("V1ManagedFieldsEntry", "fieldsV1"): "any",
    ("V1NetworkPolicyPort", "port"): "int-or-string",
    ("V1ServicePort", "targetPort"): "int-or-string",
    ("V1TCPSocketAction", "port"): "int-or-string",
}

SCALARS = {"str": "string", "bool": "boolean", "datetime": "date-time", "bytes": "byte"}
_PREFIX = re.compile(r"^(CoreV1|DiscoveryV1|NetworkingV1|V1)")


def model(name: str) -> Any:
    cls = getattr(models, name, None)
    if cls is None:
        raise SystemExit(f"the kubernetes client has no model {name}")
    return cls


def referenced(type_string: str) -> list[str]:
    return [t for t in re.findall(r"[A-Z]\w+", type_string) if t not in ("Dict", "List")]


def closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for type_string in model(name).openapi_types.values():
            todo.extend(referenced(type_string))
    return seen


def root_class(kind: str) -> str:
    return CLASS_OF_KIND.get(kind, "V1" + kind)


def packages(all_types: set[str]) -> dict[str, str]:
    """The package of each type: meta, core, or the group whose kinds alone reach it."""
    core_roots = [root_class(r.kind) for r in RESOURCES if r.group == ""]
    core = closure(core_roots)
    out: dict[str, str] = {}
    for name in sorted(all_types):
        if name in META_TYPES:
            out[name] = "meta"
        elif name in core:
            out[name] = "core"
    for r in RESOURCES:
        if r.group == "":
            continue
        package = r.group.split(".")[0]
        for name in closure([root_class(r.kind)]):
            if name in out:
                continue
            out[name] = package
    if missing := sorted(all_types - out.keys()):
        raise SystemExit(f"no package for {missing}: add them to META_TYPES?")
    return out


def type_key(name: str, package_of: dict[str, str]) -> str:
    return f"{package_of[name]}.v1.{_PREFIX.sub('', name)}"


def field_type(owner: str, json_name: str, type_string: str, package_of: dict[str, str]) -> str:
    if type_string == "object":
        if (owner, json_name) not in OBJECT_FIELDS:
            raise SystemExit(f"{owner}.{json_name} is typed `object`: add it to OBJECT_FIELDS")
        return OBJECT_FIELDS[(owner, json_name)]
    converted = convert(type_string, package_of)
    for table, old, new in ((INT64, "int32", "int64"), (QUANTITY, "string", "quantity"),
                            (MICRO_TIME, "date-time", "micro-time")):
        if json_name in table.get(owner, ()):
            converted = replace_leaf(converted, old, new, f"{owner}.{json_name}")
    return converted


def replace_leaf(field: str, old: str, new: str, where: str) -> str:
    """`[]int32` -> `[]int64`: swap the element type under any list/map wrappers."""
    m = re.fullmatch(r"((?:\[\]|map\[string\])*)(.+)", field)
    assert m is not None
    if m[2] != old:
        raise SystemExit(f"{where}: expected {old}, the client says {field}")
    return m[1] + new


def convert(type_string: str, package_of: dict[str, str]) -> str:
    if m := re.fullmatch(r"List\[(.+)\]", type_string):
        return "[]" + convert(m[1], package_of)
    if m := re.fullmatch(r"Dict\[str, (.+)\]", type_string):
        return "map[string]" + convert(m[1], package_of)
    if type_string == "int":
        return "int32"
    if type_string in SCALARS:
        return SCALARS[type_string]
    if type_string in package_of:
        return type_key(type_string, package_of)
    raise SystemExit(f"unexpected client type {type_string!r}")


def required_fields(cls: Any) -> list[str]:
    fields = getattr(cls, "model_fields", None)
    if fields is None:  # clients before the pydantic models do not say
        return []
    return sorted(f.serialization_alias or name for name, f in fields.items() if f.is_required())


def check_tables(all_types: set[str]) -> None:
    for table in (INT64, QUANTITY, MICRO_TIME):
        for owner, names in table.items():
            if owner not in all_types:
                raise SystemExit(f"override table names {owner}, which is not in the closure")
            known = set(model(owner).attribute_map.values())
            for name in names:
                if name not in known:
                    raise SystemExit(f"override table names {owner}.{name}, which does not exist")


def build() -> dict[str, Any]:
    roots = [root_class(r.kind) for r in RESOURCES] + list(EXTRA_ROOTS)
    all_types = closure(roots)
    check_tables(all_types)
    package_of = packages(all_types)
    types: dict[str, dict[str, str]] = {}
    required: dict[str, list[str]] = {}
    for name in sorted(all_types):
        cls = model(name)
        key = type_key(name, package_of)
        if key in types:
            raise SystemExit(f"two client types map to {key}")
        types[key] = {
            cls.attribute_map[attr]: field_type(name, cls.attribute_map[attr], ts, package_of)
            for attr, ts in cls.openapi_types.items()
        }
        if req := required_fields(cls):
            required[key] = req
    kinds = {f"{r.api_version}/{r.kind}": type_key(root_class(r.kind), package_of)
             for r in RESOURCES}
    for api_version in sorted({r.api_version for r in RESOURCES} | {"meta.k8s.io/v1"}):
        kinds[f"{api_version}/DeleteOptions"] = "meta.v1.DeleteOptions"
    kinds["v1/Status"] = "meta.v1.Status"
    kinds["meta.k8s.io/v1/Status"] = "meta.v1.Status"
    return {
        "$source": "tools/gen_schema.py from the kubernetes python client "
                   + kubernetes.__version__,
        "kinds": kinds,
        "types": types,
        "required": required,
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if schema.json is stale")
    args = parser.parse_args()
    text = render(build())
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run tools/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
