"""api layer of nbkube: objects in Kubernetes wire shape, with nothing below it but errors and clock.

Modules (see docs/architecture.md for what may import this layer):
  kinds          the table of kinds, their names, groups and scope
  meta           accessors for plain-dict objects (`Obj`)
  serialization  load_manifests / load_file (YAML, JSON, multi-document, `kind: List`), dump_yaml / dump_json
  selectors      label selectors: string form, matchLabels/matchExpressions, RC/Service maps
  defaults       apply_defaults (what Kubernetes fills in), preserve_allocated (for updates)
  validation     validate / validate_update, built from validate_* modules per kind
  fieldnames     unknown-field detection for manifests (kubectl's strict decoding)
  quantity       resource quantities (`100m`, `64Mi`); intstr: int-or-percent values
  naming         DNS-1123, label and port-name syntax rules; fieldcheck: typed field access for validators
"""
