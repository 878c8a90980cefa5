"""Version lifecycle and catalog edits: POST .../versions/{v}:deprecate|:archive|:restore (writer of
the namespace), DELETE .../versions/{v}, POST .../versions/{v}:undelete and DELETE
/v1/adapters/{ns}/{name}?all_versions=true (maintainer), DELETE .../aliases/{alias} (writer; maintainer
for a protected alias), PATCH /v1/adapters/{ns}/{name} (writer). The namespace policy decides in the
service call; each change is one audit event naming the principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SignedIn
from api.errors import ERROR_RESPONSES
from api.schemas import AdapterPatch, AliasDeleted
from registry.errors import InvalidInput
from registry.refs import validate_name
from registry.service.catalog import lifecycle
from registry.views import AdapterView, VersionView

from .common import VERSION, AliasName, Name, NamedVersion, Namespace, Selector, version_ref

router = APIRouter(prefix="/v1/adapters", tags=["lifecycle"], responses=ERROR_RESPONSES)


@router.post(VERSION + ":deprecate", response_model=VersionView)
def deprecate(caller: SignedIn, ns: Namespace, name: Name, v: Selector) -> VersionView:
    """Still resolved everywhere; compositions using it as an input get a warning."""
    return lifecycle.set_status(caller.reg, version_ref(ns, name, v), "deprecate")


@router.post(VERSION + ":archive", response_model=VersionView)
def archive(caller: SignedIn, ns: Namespace, name: Name, v: Selector) -> VersionView:
    """Skipped by `latest` and by default listings; a number, alias or digest still names it."""
    return lifecycle.set_status(caller.reg, version_ref(ns, name, v), "archive")


@router.post(VERSION + ":restore", response_model=VersionView)
def restore(caller: SignedIn, ns: Namespace, name: Name, v: Selector) -> VersionView:
    """Back to active (from deprecated or archived; a deleted version cannot be restored)."""
    return lifecycle.set_status(caller.reg, version_ref(ns, name, v), "restore")


@router.delete(VERSION, response_model=VersionView)
def delete_version(caller: SignedIn, ns: Namespace, name: Name, v: NamedVersion) -> VersionView:
    """409 naming them while live versions descend from it; `latest` is refused (name the version).
    Its aliases are removed; lineage and audit keep its digest; its objects are removed by `pemreg gc`
    after the grace period, and until then `:undelete` brings it back."""
    return lifecycle.delete_version(caller.reg, version_ref(ns, name, v))


@router.post(VERSION + ":undelete", response_model=VersionView)
def undelete_version(caller: SignedIn, ns: Namespace, name: Name, v: Selector) -> VersionView:
    """A deleted version (by number or digest) comes back with the status it had, while gc has not
    removed its files (409 after that: register the files again with `allow_deleted`)."""
    return lifecycle.undelete_version(caller.reg, version_ref(ns, name, v))


@router.delete("/{ns}/{name}", response_model=list[VersionView])
def delete_adapter(
    caller: SignedIn,
    ns: Namespace,
    name: Name,
    all_versions: Annotated[
        bool,
        Query(
            description="required, true: this deletes every version of the adapter",
            json_schema_extra={"enum": [True]},
        ),
    ],
) -> list[VersionView]:
    """Every version not deleted yet, in one transaction (409 when another adapter's version descends
    from one of them). The explicit `all_versions=true` is required (422 naming it otherwise)."""
    validate_name(f"{ns}/{name}", "name")
    if not all_versions:
        raise InvalidInput(
            "all_versions: deleting an adapter deletes every version; pass all_versions=true "
            "(or delete one version: .../versions/{v})",
            field="all_versions",
        )
    return lifecycle.delete_all_versions(caller.reg, f"{ns}/{name}")


@router.delete("/{ns}/{name}/aliases/{alias}", response_model=AliasDeleted)
def delete_alias(caller: SignedIn, ns: Namespace, name: Name, alias: AliasName) -> AliasDeleted:
    version = lifecycle.delete_alias(caller.reg, f"{ns}/{name}", alias)
    return AliasDeleted(name=f"{ns}/{name}", alias=alias, version=version)


@router.patch("/{ns}/{name}", response_model=AdapterView)
def patch_adapter(caller: SignedIn, ns: Namespace, name: Name, body: AdapterPatch) -> AdapterView:
    """JSON merge patch: `tags` entries set (a null value removes the tag); `description` replaces."""
    validate_name(f"{ns}/{name}", "name")
    return lifecycle.update_adapter(caller.reg, f"{ns}/{name}", tags=body.tags, description=body.description)
