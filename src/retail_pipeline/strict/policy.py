"""Who may do what: the IAM bindings of terraform/*.tf, applied to the chain's actual resources.

:meth:`Policy.check` answers "may EMAIL use PERMISSION on RESOURCE" the way IAM does: deny by
default; allowed when a binding on the resource or on any resource above it (object < bucket <
project, table < dataset < project, execution < job < project) grants EMAIL a role whose
permission list (``roles.json``, from Google's documentation) contains PERMISSION, and the
binding's condition, if any, holds for the resource. The admin principal (the one that provisions,
like ``terraform apply``) is allowed everything.

Conditions: only ``resource.name.startsWith("...")`` is understood (what terraform/iam.tf uses);
another expression is a :class:`~.terraform_iam.TerraformIamError` at load time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as importlib_resources
from pathlib import Path

from .resources import ADMIN, ResourceMap
from .terraform_iam import Binding, TerraformIamError, load_documents, parse_hcl, read_bindings

_STARTS_WITH = re.compile(r'^\s*resource\.name\.startsWith\("([^"]*)"\)\s*$')
_REF = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    granted_by: str | None  #: e.g. ``roles/storage.objectUser on projects/_/buckets/b (google_..._iam_member.x)``
    binding: str | None = None  #: the Terraform address of the granting binding (``google_..._iam_member.x``)


@dataclass(frozen=True)
class Grant:
    """One binding resolved against a ResourceMap: actual email, resource name and permissions."""

    binding: Binding
    email: str
    resource: str
    permissions: frozenset[str]
    name_prefix: str | None  #: the condition's ``resource.name.startsWith`` prefix, if conditional

    def describe(self) -> str:
        condition = f" if resource.name starts with {self.name_prefix!r}" if self.name_prefix is not None else ""
        return f"{self.binding.role} on {self.resource}{condition} ({self.binding.address})"


@lru_cache(maxsize=1)
def predefined_roles() -> dict[str, frozenset[str]]:
    """``roles/...`` -> permissions, from the package's roles.json."""
    text = importlib_resources.files(__package__).joinpath("roles.json").read_text()
    return {name: frozenset(role["permissions"]) for name, role in json.loads(text)["roles"].items()}


def role_sources() -> dict[str, str]:
    """``roles/...`` -> the documentation page its permission list came from."""
    text = importlib_resources.files(__package__).joinpath("roles.json").read_text()
    return {name: role["source"] for name, role in json.loads(text)["roles"].items()}


class Policy:
    """The grants of one deployment (see the module docstring)."""

    def __init__(
        self, bindings: list[Binding], resources: ResourceMap, roles: dict[str, frozenset[str]] | None = None
    ) -> None:
        self.resources = resources
        self.bindings = list(bindings)
        known = dict(predefined_roles())
        known.update(roles or {})
        self.admin = resources.email(ADMIN)
        self._by_key: dict[tuple[str, str], list[Grant]] = {}
        self.grants: list[Grant] = []
        for binding in self.bindings:
            if binding.role not in known:
                raise TerraformIamError(
                    f"{binding.address}: role {binding.role} has no permission list in "
                    "roles.json (add it, with the documentation page it comes from)"
                )
            grant = Grant(
                binding,
                self._email(binding),
                self._resource(binding),
                known[binding.role],
                self._condition_prefix(binding),
            )
            self.grants.append(grant)
            self._by_key.setdefault((grant.email, grant.resource), []).append(grant)

    @classmethod
    def from_terraform(cls, tf_dir: Path, resources: ResourceMap) -> Policy:
        """The grants in every ``*.tf`` file of TF_DIR (the repo's ``terraform/``)."""
        bindings, custom = read_bindings(load_documents(tf_dir))
        return cls(bindings, resources, custom)

    @classmethod
    def from_hcl(cls, text: str, resources: ResourceMap) -> Policy:
        """The grants in one HCL snippet (for tests that need one specific grant)."""
        bindings, custom = read_bindings(parse_hcl(text))
        return cls(bindings, resources, custom)

    # -- resolving --------------------------------------------------------------------------------
    def _email(self, binding: Binding) -> str:
        if binding.principal.startswith("email:"):
            return binding.principal[len("email:") :]
        try:
            return self.resources.email(binding.principal)
        except KeyError as exc:
            raise TerraformIamError(f"{binding.address}: {exc.args[0]}") from None

    def _resource(self, binding: Binding) -> str:
        logical = binding.resource
        try:
            if logical.startswith("table:"):
                dataset, table = logical[len("table:") :].split("/", 1)
                return f"{self.resources.resource('dataset:' + dataset)}/tables/{table}"
            return self.resources.resource(logical)
        except KeyError as exc:
            raise TerraformIamError(f"{binding.address}: {exc.args[0]}") from None

    def _condition_prefix(self, binding: Binding) -> str | None:
        if binding.condition is None:
            return None
        match = _STARTS_WITH.match(binding.condition)
        if not match:
            raise TerraformIamError(
                f"{binding.address}: unsupported IAM condition {binding.condition!r} "
                '(only resource.name.startsWith("...") is understood)'
            )
        return _REF.sub(lambda ref: self._interpolate(ref[1].strip(), binding.address), match[1])

    def _interpolate(self, expr: str, where: str) -> str:
        if expr in ("var.project_id",) or re.fullmatch(r"data\.google_project\.\w+\.project_id", expr):
            return self.resources.project
        if re.fullmatch(r"data\.google_project\.\w+\.number", expr):
            return self.resources.project_number
        bucket = re.fullmatch(r"google_storage_bucket\.(\w+)\.name", expr)
        if bucket:
            return self._resource(Binding(where, "", "", f"bucket:{bucket[1]}")).rsplit("/", 1)[1]
        dataset = re.fullmatch(r"google_bigquery_dataset\.(\w+)\.dataset_id", expr)
        if dataset:
            return self._resource(Binding(where, "", "", f"dataset:{dataset[1]}")).rsplit("/", 1)[1]
        raise TerraformIamError(f"{where}: cannot resolve ${{{expr}}} in an IAM condition")

    # -- deciding ---------------------------------------------------------------------------------
    def check(self, email: str, permission: str, resource: str) -> Decision:
        """May EMAIL use PERMISSION on RESOURCE (a full resource name)? Deny unless a grant says so."""
        if email == self.admin:
            return Decision(True, "admin (provisioner)")
        for scope in self.resources.ancestors(resource):
            for grant in self._by_key.get((email, scope), ()):
                if permission in grant.permissions and (
                    grant.name_prefix is None or resource.startswith(grant.name_prefix)
                ):
                    return Decision(True, grant.describe(), grant.binding.address)
        return Decision(False, None)

    def grants_of(self, principal: str) -> list[Grant]:
        """The grants of one logical principal (for documentation and tests)."""
        email = self.resources.email(principal)
        return [g for g in self.grants if g.email == email]
