"""The IAM grants of terraform/*.tf, read with python-hcl2 (as tests/test_terraform.py reads them).

Each ``google_*_iam_member`` (or ``_iam_binding``) resource becomes one :class:`Binding` per member
and ``for_each`` entry: who (a logical principal such as ``ingest`` or ``dbt``), which role, on
what (a logical resource such as ``bucket:landing``, ``dataset:raw``, ``project``, ``job:dbt``),
and its IAM condition expression if any. Expressions are resolved by the patterns this project's
Terraform uses; anything else is a :class:`TerraformIamError` naming the resource and the
expression, so a new kind of grant cannot be silently ignored.

Grants that exist only when a flag is on (``count = local.cmek_enabled ? 1 : 0``, the CMEK grants of
terraform/kms.tf) are read as if the flag were on: one grant, addressed ``...[0]``. Their members
and keys are conditionals too (``flag ? "serviceAccount:${...}" : ""``); the branch that names
something is read. A Cloud KMS key is ``cryptoKey:<name>`` after the ``google_kms_crypto_key`` its
expression names first (a key named in variables instead is the same logical key, deployed elsewhere).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

from .hcl_expr import split_conditional, strip_parens, unsplat


class TerraformIamError(ValueError):
    """A grant in the Terraform files that the strict layer cannot read."""


@dataclass(frozen=True)
class Binding:
    address: str  #: e.g. ``google_storage_bucket_iam_member.ingest_reads_landing["key"]``
    role: str  #: ``roles/...`` or ``custom:<terraform name>`` for google_project_iam_custom_role
    principal: str  #: logical principal (``ingest``), or ``email:<address>`` for a literal member
    resource: str  #: logical resource (``bucket:lake``, ``table:raw/batches``, ``project``)
    condition: str | None = None  #: the CEL expression, Terraform interpolations still in it


#: resource type -> the attribute that names what the grant is on
TARGET_ATTRIBUTE = {
    "google_storage_bucket_iam": "bucket",
    "google_bigquery_dataset_iam": "dataset_id",
    "google_bigquery_table_iam": "table_id",
    "google_project_iam": "project",
    "google_pubsub_topic_iam": "topic",
    "google_pubsub_subscription_iam": "subscription",
    "google_cloud_run_v2_job_iam": "name",
    "google_cloud_run_v2_service_iam": "name",
    "google_service_account_iam": "service_account_id",
    "google_artifact_registry_repository_iam": "repository",
    "google_kms_crypto_key_iam": "crypto_key_id",
}
NOT_GRANTS = {"google_project_iam_audit_config", "google_project_iam_custom_role"}

_RESOURCE_PATTERNS = [
    (re.compile(r"^var\.project_id$|^data\.google_project\.\w+\.project_id$"), lambda m: "project"),
    (re.compile(r"^google_storage_bucket\.(\w+)\.(name|id)$"), lambda m: f"bucket:{m[1]}"),
    (re.compile(r"^google_bigquery_dataset\.(\w+)\.dataset_id$"), lambda m: f"dataset:{m[1]}"),
    (re.compile(r"^google_pubsub_topic\.(\w+)\.(name|id)$"), lambda m: f"topic:{m[1]}"),
    (re.compile(r"^google_pubsub_subscription\.(\w+)\.(name|id)$"), lambda m: f"subscription:{m[1]}"),
    (re.compile(r"^google_cloud_run_v2_job\.(\w+)\.(name|id)$"), lambda m: f"job:{m[1]}"),
    (re.compile(r"^google_cloud_run_v2_service\.(\w+)\.(name|id)$"), lambda m: f"service:{m[1]}"),
    (
        re.compile(r"^google_cloudfunctions2_function\.(\w+)\.service_config\[0\]\.service$"),
        lambda m: f"service:{m[1]}",
    ),
    (re.compile(r'^google_service_account\.function\["(\w+)"\]\.(name|id)$'), lambda m: f"serviceAccount:{m[1]}"),
    (re.compile(r"^google_service_account\.(\w+)\.(name|id)$"), lambda m: f"serviceAccount:{m[1]}"),
    (
        re.compile(r"^google_artifact_registry_repository\.(\w+)\.(name|id|repository_id)$"),
        lambda m: f"repository:{m[1]}",
    ),
]
_PRINCIPAL_PATTERNS = [
    (re.compile(r'^local\.function_members\["(\w+)"\]$'), lambda m: m[1]),
    (re.compile(r'^google_service_account\.function\["(\w+)"\]\.(email|member)$'), lambda m: m[1]),
    (re.compile(r"^google_service_account\.(\w+)\.(email|member)$"), lambda m: m[1]),
    (re.compile(r"^google_project_service_identity\.(\w+)\.(email|member)$"), lambda m: f"{m[1]}_agent"),
    (re.compile(r"^data\.google_storage_project_service_account\.\w+\.email_address$"), lambda m: "gcs_agent"),
    (re.compile(r"^data\.google_bigquery_default_service_account\.\w+\.email$"), lambda m: "bigquery_agent"),
]
_EMPTY = ('""', "null")
_KEY = re.compile(r"^google_kms_crypto_key\.(\w+)\.id$")
_INTERPOLATION = re.compile(r"^\$\{(.*)\}$", re.S)
_CUSTOM_ROLE = re.compile(r"^google_project_iam_custom_role\.(\w+)\.(id|name)$")


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _clean(v) for k, v in node.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node  # strings keep their quotes: '"x"' is a literal, '${x}' an expression


def load_documents(tf_dir: Path) -> list[dict]:
    """Every top-level ``*.tf`` file of TF_DIR, parsed."""
    paths = sorted(Path(tf_dir).glob("*.tf"))
    if not paths:
        raise TerraformIamError(f"no .tf files in {tf_dir}")
    docs = []
    for path in paths:
        with path.open() as handle:
            docs.append(_clean(hcl2.load(handle)))
    return docs


def parse_hcl(text: str) -> list[dict]:
    """One HCL snippet (tests build small policies from one)."""
    return [_clean(hcl2.load(io.StringIO(text)))]


class _Reader:
    def __init__(self, docs: list[dict]) -> None:
        self.resources: dict[tuple[str, str], dict] = {}
        self.locals: dict[str, Any] = {}
        for doc in docs:
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        self.resources[(rtype, name)] = body
            for block in doc.get("locals", []):
                self.locals.update(block)

    def expression(self, value: Any, each: tuple[str, Any] | None, where: str) -> str:
        """The Terraform expression inside ``${...}`` (``each.*`` and string ``local.*`` substituted), or the
        quoted literal VALUE is."""
        if not isinstance(value, str):
            raise TerraformIamError(f"{where}: expected an expression, got {value!r}")
        match = _INTERPOLATION.match(value)
        if not match:
            return value  # a quoted literal, possibly with interpolations inside: the caller decides
        expr = match[1].strip()
        if expr in ("each.value", "each.key"):
            if each is None:
                raise TerraformIamError(f"{where}: {expr} outside for_each")
            return self.expression(each[1] if expr == "each.value" else f'${{"{each[0]}"}}', None, where)
        local = re.fullmatch(r"local\.(\w+)", expr)
        if local and local[1] in self.locals and isinstance(self.locals[local[1]], str):
            text = self.locals[local[1]]
            return self.expression(text, each, where) if text.startswith("${") else text
        return expr

    def one_branch(self, expr: str, each: tuple[str, Any] | None, where: str) -> str:
        """EXPR, or of a conditional ``flag ? X : ""`` (either way round) the branch X, as an expression."""
        for _ in range(8):
            parts = _conditional(expr, where)
            if parts is None:
                return expr
            _, if_true, if_false = parts
            named = [branch for branch in (if_true, if_false) if branch not in _EMPTY]
            if len(named) != 1:
                raise TerraformIamError(f"{where}: {expr!r} is a conditional that does not name exactly one thing")
            expr = self.expression("${" + named[0] + "}", each, where)
        raise TerraformIamError(f"{where}: conditionals nested too deep in {expr!r}")

    def principal(self, value: Any, each: tuple[str, Any] | None, where: str) -> str:
        expr = self.one_branch(self.expression(value, each, where), each, where)
        literal = _unquote(expr) if expr.startswith('"') else None
        if literal is not None:
            inner = re.fullmatch(r"serviceAccount:\$\{(.*)\}", literal)
            if inner:
                expr = unsplat(inner[1].strip())
            elif re.fullmatch(r"(serviceAccount|user):[^$]+@[^$]+", literal):
                return "email:" + literal.split(":", 1)[1]
            else:
                raise TerraformIamError(f"{where}: member {literal!r} is not a service account")
        expr = unsplat(expr)
        if expr.startswith("local.function_members[") and "google_service_account.function" not in str(
            self.locals.get("function_members", "")
        ):
            raise TerraformIamError(f"{where}: local.function_members is not the function service accounts' members")
        for pattern, principal in _PRINCIPAL_PATTERNS:
            match = pattern.match(expr)
            if match:
                return principal(match)
        raise TerraformIamError(f"{where}: cannot tell which principal member = {value!r} is")

    def target(self, rtype: str, body: dict, each: tuple[str, Any] | None, where: str) -> str:
        family = rtype.rsplit("_", 1)[0]
        if family == "google_bigquery_table_iam":
            table = self.expression(body["table_id"], each, where)
            match = re.fullmatch(r"google_bigquery_table\.(\w+)\.table_id", table)
            if not match or ("google_bigquery_table", match[1]) not in self.resources:
                raise TerraformIamError(f"{where}: cannot resolve table_id = {body['table_id']!r}")
            defined = self.resources[("google_bigquery_table", match[1])]
            dataset = self._resolve(self.expression(defined["dataset_id"], None, where), where)
            return f"table:{dataset.split(':', 1)[1]}/{_unquote(defined['table_id'])}"
        if family == "google_kms_crypto_key_iam":
            keys = self.crypto_keys(self.expression(body["crypto_key_id"], each, where), where, 0)
            if not keys:
                raise TerraformIamError(
                    f"{where}: crypto_key_id = {body['crypto_key_id']!r} names no "
                    "google_kms_crypto_key of this configuration"
                )
            return f"cryptoKey:{keys[0]}"
        return self._resolve(self.expression(body[TARGET_ATTRIBUTE[family]], each, where), where)

    def crypto_keys(self, expr: str, where: str, depth: int) -> list[str]:
        """The ``google_kms_crypto_key`` names EXPR can be, in order; branches naming a key given in
        variables (``var.*``, a local built from them) or nothing (``""``) add none; anything else fails."""
        if depth > 8:
            raise TerraformIamError(f"{where}: crypto key expression nested too deep")
        expr = strip_parens(expr)
        parts = _conditional(expr, where)
        if parts is not None:
            found = []
            for branch in parts[1:]:
                found += [k for k in self.crypto_keys(branch, where, depth + 1) if k not in found]
            return found
        key = _KEY.match(unsplat(expr))
        if key:
            if ("google_kms_crypto_key", key[1]) not in self.resources:
                raise TerraformIamError(f"{where}: no resource google_kms_crypto_key.{key[1]}")
            return [key[1]]
        if expr == '""' or re.fullmatch(r"var\.\w+(\.\w+)*", expr):
            return []
        local = re.fullmatch(r"local\.(\w+)", expr)
        if local and isinstance(self.locals.get(local[1]), str) and self.locals[local[1]].startswith("${"):
            return self.crypto_keys(_INTERPOLATION.match(self.locals[local[1]])[1], where, depth + 1)  # type: ignore[index]
        raise TerraformIamError(f"{where}: cannot tell which crypto key {expr!r} is")

    def _resolve(self, expr: str, where: str) -> str:
        for pattern, logical in _RESOURCE_PATTERNS:
            match = pattern.match(expr)
            if match:
                return logical(match)
        raise TerraformIamError(f"{where}: cannot tell which resource {expr!r} is")

    def role(self, value: Any, where: str) -> str:
        if isinstance(value, str) and value.startswith('"'):
            role = _unquote(value)
            if not role.startswith("roles/"):
                raise TerraformIamError(f"{where}: role {role!r} is not a predefined role")
            return role
        match = _CUSTOM_ROLE.match(self.expression(value, None, where))
        if not match:
            raise TerraformIamError(f"{where}: cannot resolve role = {value!r}")
        return f"custom:{match[1]}"

    def switched(self, body: dict, where: str) -> bool:
        """Whether the grant has ``count = <flag> ? 1 : 0`` (read as on); any other count fails."""
        if "count" not in body:
            return False
        spec = body["count"]
        match = _INTERPOLATION.match(spec) if isinstance(spec, str) else None
        parts = _conditional(match[1], where) if match else None
        if parts is None or parts[1:] != ("1", "0") or "for_each" in body:
            raise TerraformIamError(
                f"{where}: count = {spec!r} on an IAM grant is not supported "
                "(only count = <condition> ? 1 : 0, a grant that is on or off)"
            )
        return True

    def for_each(self, body: dict, where: str) -> list[tuple[str, Any]] | None:
        spec = body.get("for_each")
        if spec is None:
            return None
        if isinstance(spec, str) and spec.startswith("${"):
            expr = _INTERPOLATION.match(spec)[1].strip()  # type: ignore[index]
            local = re.fullmatch(r"local\.(\w+)", expr)
            spec = self.locals.get(local[1]) if local else None
        if isinstance(spec, dict):
            return [(str(k), v) for k, v in spec.items()]
        raise TerraformIamError(f"{where}: for_each must be a map literal or a local holding one")

    def condition(self, body: dict, where: str) -> str | None:
        blocks = body.get("condition") or []
        if not blocks:
            return None
        if len(blocks) != 1:
            raise TerraformIamError(f"{where}: one condition block expected")
        expression = _unquote(blocks[0]["expression"]).replace('\\"', '"')

        def string_local(ref: re.Match) -> str:  # ${local.x} where local.x is a string: its text
            value = self.locals.get(ref[1])
            return _unquote(value) if isinstance(value, str) and value.startswith('"') else ref[0]

        return re.sub(r"\$\{local\.(\w+)\}", string_local, expression)

    def custom_roles(self) -> dict[str, frozenset[str]]:
        roles = {}
        for (rtype, name), body in self.resources.items():
            if rtype == "google_project_iam_custom_role":
                roles[f"custom:{name}"] = frozenset(_unquote(p) for p in body.get("permissions", []))
        return roles

    def bindings(self) -> list[Binding]:
        found = []
        for (rtype, name), body in self.resources.items():
            if "_iam_" not in rtype or rtype in NOT_GRANTS:
                continue
            family, kind = rtype.rsplit("_", 1)
            if family not in TARGET_ATTRIBUTE or kind not in ("member", "binding"):
                raise TerraformIamError(f"{rtype}.{name}: the strict layer does not read {rtype} resources")
            index = "[0]" if self.switched(body, f"{rtype}.{name}") else ""
            entries = self.for_each(body, f"{rtype}.{name}")
            expanded: list[tuple[str, Any] | None] = list(entries) if entries is not None else [None]
            for each in expanded:
                where = f"{rtype}.{name}" + (f'["{each[0]}"]' if each else index)
                role = self.role(body.get("role"), where)
                target = self.target(rtype, body, each, where)
                members = [body["member"]] if kind == "member" else list(body.get("members") or [])
                for member in members:
                    found.append(
                        Binding(where, role, self.principal(member, each, where), target, self.condition(body, where))
                    )
        return found


def _conditional(expr: str, where: str) -> tuple[str, str, str] | None:
    try:
        return split_conditional(expr)
    except ValueError as exc:
        raise TerraformIamError(f"{where}: {exc}") from None


def read_bindings(docs: list[dict]) -> tuple[list[Binding], dict[str, frozenset[str]]]:
    """Every grant in DOCS, and the custom roles they define (``custom:<name>`` -> permissions)."""
    reader = _Reader(docs)
    return reader.bindings(), reader.custom_roles()
