"""TokenRequest (`kubectl create token`): the request checked field by field, the answer's shape,
and the issued token accepted by the authenticator."""

from __future__ import annotations

from typing import Any

import pytest

from nbkube.apiserver.authn import Authenticator
from nbkube.apiserver.tokenrequest import create_token
from nbkube.clock import FakeClock, parse_rfc3339
from nbkube.errors import BadRequest, Invalid, NotFound, Unauthorized
from nbkube.registry.registry import Registry
from nbkube.security.pki import ClusterPKI
from nbkube.security.tokens import DEFAULT_AUDIENCE, TokenSigner


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return ClusterPKI(str(tmp_path_factory.mktemp("tr") / "pki")).ensure()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(pki: ClusterPKI, clock: FakeClock) -> TokenSigner:
    return TokenSigner(pki.sa_key_pem, pki.sa_pub_pem, clock=clock)


@pytest.fixture
def sa(registry: Registry) -> dict[str, Any]:
    registry.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    return registry.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "team-a"}}
    )


def _pod(registry: Registry, name: str, account: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if account:
        spec["serviceAccountName"] = account
    return registry.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team-a"}, "spec": spec}
    )


def _request(**spec: Any) -> dict[str, Any]:
    # what kubectl create token sends
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"token": "", "expirationTimestamp": None},
    }


def _field_errors(registry: Registry, signer: TokenSigner, body: Any) -> list[str]:
    with pytest.raises(Invalid) as info:
        create_token(registry, signer, "team-a", "builder", body)
    return [str(e) for e in info.value.errors]


def test_defaults(registry: Registry, signer: TokenSigner, sa: dict[str, Any], clock: FakeClock) -> None:
    out = create_token(registry, signer, "team-a", "builder", None)
    assert out["kind"] == "TokenRequest" and out["apiVersion"] == "authentication.k8s.io/v1"
    assert out["metadata"]["name"] == "builder" and out["metadata"]["namespace"] == "team-a"
    assert out["spec"] == {"audiences": [DEFAULT_AUDIENCE], "expirationSeconds": 3600, "boundObjectRef": None}
    assert parse_rfc3339(out["status"]["expirationTimestamp"]) == int(clock.now()) + 3600
    claims = signer.verify(out["status"]["token"], [DEFAULT_AUDIENCE])
    assert claims["sub"] == "system:serviceaccount:team-a:builder"
    assert claims["kubernetes.io"]["serviceaccount"]["uid"] == sa["metadata"]["uid"]


def test_kubectl_request_and_authenticator(
    registry: Registry, signer: TokenSigner, sa: dict[str, Any], pki: ClusterPKI
) -> None:
    out = create_token(registry, signer, "team-a", "builder", _request(audiences=None, expirationSeconds=600))
    assert out["spec"]["expirationSeconds"] == 600
    user = Authenticator(pki, signer, registry).authenticate(None, "Bearer " + out["status"]["token"])
    assert user.name == "system:serviceaccount:team-a:builder"


def test_audiences(registry: Registry, signer: TokenSigner, sa: dict[str, Any]) -> None:
    out = create_token(registry, signer, "team-a", "builder", _request(audiences=["vault", "nats"]))
    assert out["spec"]["audiences"] == ["vault", "nats"]
    assert signer.verify(out["status"]["token"], ["nats"])["aud"] == ["vault", "nats"]
    assert _field_errors(registry, signer, _request(audiences=["ok", ""])) == [
        'spec.audiences[1]: Invalid value: "": may not be empty'
    ]
    assert _field_errors(registry, signer, _request(audiences="vault")) == [
        'spec.audiences: must be a list, got string "vault"'
    ]


def test_expiration_bounds(registry: Registry, signer: TokenSigner, sa: dict[str, Any]) -> None:
    assert _field_errors(registry, signer, _request(expirationSeconds=599)) == [
        "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
    ]
    assert _field_errors(registry, signer, _request(expirationSeconds=48 * 3600 + 1)) == [
        "spec.expirationSeconds: Invalid value: 172801: may not specify a duration larger than 48 hours"
    ]
    assert _field_errors(registry, signer, _request(expirationSeconds="1h")) == [
        'spec.expirationSeconds: must be an integer, got string "1h"'
    ]
    out = create_token(registry, signer, "team-a", "builder", _request(expirationSeconds=48 * 3600))
    assert out["spec"]["expirationSeconds"] == 172800


def test_bound_to_pod(registry: Registry, signer: TokenSigner, sa: dict[str, Any], pki: ClusterPKI) -> None:
    pod = _pod(registry, "web", "builder")
    out = create_token(
        registry,
        signer,
        "team-a",
        "builder",
        _request(boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "web"}),
    )
    assert out["spec"]["boundObjectRef"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "name": "web",
        "uid": pod["metadata"]["uid"],
    }
    claims = signer.verify(out["status"]["token"], [DEFAULT_AUDIENCE])
    assert claims["kubernetes.io"]["pod"] == {"name": "web", "uid": pod["metadata"]["uid"]}
    registry.delete("Pod", "web", "team-a")
    with pytest.raises(Unauthorized, match="Pod team-a/web has been deleted"):
        Authenticator(pki, signer, registry).authenticate(None, "Bearer " + out["status"]["token"])


def test_bound_object_errors(registry: Registry, signer: TokenSigner, sa: dict[str, Any]) -> None:
    _pod(registry, "other-sa", "deployer")
    _pod(registry, "default-sa", None)
    cases = {
        "Node": ['spec.boundObjectRef.kind: Unsupported value: "Node": supported values: "Pod", "Secret"'],
        "missing": ['spec.boundObjectRef.name: Not found: pods "missing" not found in namespace team-a'],
        "other-sa": [
            'spec.boundObjectRef.name: Invalid value: "other-sa": pod other-sa runs as ServiceAccount '
            "'deployer', not 'builder'"
        ],
        "default-sa": [
            'spec.boundObjectRef.name: Invalid value: "default-sa": pod default-sa runs as ServiceAccount '
            "'default', not 'builder'"
        ],
    }
    for what, expected in cases.items():
        ref = {"kind": "Node", "name": "n"} if what == "Node" else {"kind": "Pod", "name": what}
        assert _field_errors(registry, signer, _request(boundObjectRef=ref)) == expected, what
    assert _field_errors(registry, signer, _request(boundObjectRef={"kind": "Secret"})) == [
        "spec.boundObjectRef.name: required"
    ]
    secret = registry.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "team-a"}}
    )
    wrong_uid = _request(
        boundObjectRef={"kind": "Secret", "name": "s", "uid": "not-" + secret["metadata"]["uid"]}
    )
    [message] = _field_errors(registry, signer, wrong_uid)
    assert (
        message.startswith("spec.boundObjectRef.uid: Invalid value") and "deleted and made again" in message
    )
    good = _request(boundObjectRef={"kind": "Secret", "name": "s", "uid": secret["metadata"]["uid"]})
    out = create_token(registry, signer, "team-a", "builder", good)
    assert signer.verify(out["status"]["token"], [DEFAULT_AUDIENCE])["kubernetes.io"]["secret"]["name"] == "s"


def test_several_errors_at_once(registry: Registry, signer: TokenSigner, sa: dict[str, Any]) -> None:
    body = _request(audiences=[""], expirationSeconds=1, boundObjectRef={"kind": "Pod", "name": "nope"})
    assert len(_field_errors(registry, signer, body)) == 3


def test_missing_service_account(registry: Registry, signer: TokenSigner, sa: dict[str, Any]) -> None:
    with pytest.raises(NotFound, match='serviceaccounts "ghost" not found'):
        create_token(registry, signer, "team-a", "ghost", None)


def test_not_a_token_request(registry: Registry, signer: TokenSigner, sa: dict[str, Any]) -> None:
    with pytest.raises(BadRequest, match="must be kind TokenRequest"):
        create_token(registry, signer, "team-a", "builder", {"kind": "Pod", "apiVersion": "v1"})
    with pytest.raises(BadRequest, match="does not match the URL's 'builder'"):
        create_token(registry, signer, "team-a", "builder", {"metadata": {"name": "other"}})
    with pytest.raises(BadRequest, match="must be a TokenRequest object"):
        create_token(registry, signer, "team-a", "builder", ["x"])  # type: ignore[arg-type]
