"""Validate Connector custom resources against the openAPIV3Schema of the generated CRD.

Usage: python check_connector_samples.py deploy/crd.yaml configs/k8s-*.yaml

The structural schema is turned into a JSON Schema the way the API server reads it: objects
with declared properties refuse other fields (kubectl's default strict field validation),
x-kubernetes-preserve-unknown-fields keeps an object open, x-kubernetes-int-or-string takes
integers and strings; list-type map and set lists must not repeat a key or value. CEL rules
(x-kubernetes-validations) are not evaluated here; the Swift tests cover them.
Exit status 0 when every resource is valid, 1 otherwise.
"""

import re
import sys

import jsonschema
import yaml

GROUP_VERSION = "switchyard.dev/v1alpha1"
KIND = "Connector"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def to_json_schema(node):
    """The JSON Schema equivalent of one structural-schema node."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "format":
            continue
        if key == "properties":
            result[key] = {name: to_json_schema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            result[key] = to_json_schema(value)
        else:
            result[key] = value
    if node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in node and "properties" in node:
        result["additionalProperties"] = False
    if node.get("x-kubernetes-list-type") == "set":
        result["uniqueItems"] = True
    return result


def list_map_problems(schema, value, path):
    """Repeated keys in x-kubernetes-list-type: map lists (which JSON Schema cannot say)."""
    problems = []
    if not isinstance(schema, dict):
        return problems
    if isinstance(value, list):
        keys = schema.get("x-kubernetes-list-map-keys")
        if schema.get("x-kubernetes-list-type") == "map" and keys:
            seen = set()
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = tuple(item.get(k) for k in keys)
                if key in seen:
                    problems.append(f"{path}[{index}]: duplicate entry with {', '.join(keys)} = {', '.join(map(str, key))}")
                seen.add(key)
        for index, item in enumerate(value):
            problems += list_map_problems(schema.get("items", {}), item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for name, child in value.items():
            sub = schema.get("properties", {}).get(name)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if sub is not None:
                problems += list_map_problems(sub, child, f"{path}.{name}")
    return problems


def error_path(error):
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "(root)"


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        crd = yaml.safe_load(handle)
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    group_version = f'{crd["spec"]["group"]}/{next(v for v in versions.values() if v.get("storage"))["name"]}'
    if group_version != GROUP_VERSION or crd["spec"]["names"]["kind"] != KIND:
        print(f"{argv[1]}: not the {KIND} CRD of {GROUP_VERSION}", file=sys.stderr)
        return 1
    structural = versions[GROUP_VERSION.split("/")[1]]["schema"]["openAPIV3Schema"]
    schema = to_json_schema(structural)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    failed = False
    for file in argv[2:]:
        with open(file, encoding="utf-8") as handle:
            documents = [d for d in yaml.safe_load_all(handle) if d is not None]
        for number, resource in enumerate(documents):
            problems = []
            if not isinstance(resource, dict):
                problems.append("(root): not an object")
            else:
                if resource.get("apiVersion") != GROUP_VERSION:
                    problems.append(f"apiVersion: expected {GROUP_VERSION}, found {resource.get('apiVersion')!r}")
                if resource.get("kind") != KIND:
                    problems.append(f"kind: expected {KIND}, found {resource.get('kind')!r}")
                name = (resource.get("metadata") or {}).get("name")
                if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
                    problems.append(f"metadata.name: {name!r} is not a DNS subdomain name")
                for error in sorted(validator.iter_errors(resource), key=lambda e: list(map(str, e.absolute_path))):
                    problems.append(f"{error_path(error)}: {error.message}")
                problems += list_map_problems(structural, resource, "")
            label = file if len(documents) == 1 else f"{file} (document {number + 1})"
            if problems:
                failed = True
                print(f"{label}: {len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
                for problem in problems:
                    print(f"  {problem.lstrip('.')}", file=sys.stderr)
            else:
                print(f"{label}: valid against {argv[1]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
