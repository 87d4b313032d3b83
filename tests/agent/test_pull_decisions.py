"""The pull policy's decisions without Docker (a fake engine API): which field a refused pull names, that the
password never reaches a message, what a plan step says about pulling, and the request schema. The real registry
runs in test_pull_policy.py."""

from __future__ import annotations

import docker.errors
import pytest
from pydantic import ValidationError

from dtma_agent import containers, reconcile, schemas
from dtma_agent.errors import ApiError

SECRET = "s3cret-Passw0rd"
AUTH = schemas.RegistryAuth(username="deploy", password=SECRET, serveraddress="127.0.0.1:5000")


class FakeApi:
    """pull() yields `events` or raises `error`; inspect_image answers once pulled."""

    def __init__(self, events=(), error=None):
        self.events, self.error, self.pulls, self.pulled = list(events), error, [], False

    def pull(self, repo, tag=None, stream=False, decode=False, auth_config=None):
        self.pulls.append((repo, tag, stream, decode, auth_config))
        if self.error is not None:
            raise self.error

        def events():
            yield from self.events
            self.pulled = True
        return events()

    def inspect_image(self, image):
        if not self.pulled:
            raise docker.errors.ImageNotFound("No such image: " + image)
        return {"Id": "sha256:new"}


def refused(api, auth=AUTH) -> ApiError:
    with pytest.raises(ApiError) as info:
        containers.pull(api, "127.0.0.1:5000/team/app:latest", "servers[a].dockerImageUrl", auth, "servers[a].registryAuth")
    return info.value


def test_a_pull_passes_the_credentials_as_auth_config_and_returns_the_image_id():
    api = FakeApi(events=[{"status": "Pulling from team/app"}, {"status": "Digest: sha256:abc"}])
    assert containers.pull(api, "127.0.0.1:5000/team/app:latest", auth=AUTH) == "sha256:new"
    assert api.pulls == [("127.0.0.1:5000/team/app", "latest", True, True,
                          {"username": "deploy", "password": SECRET, "serveraddress": "127.0.0.1:5000"})]


@pytest.mark.parametrize("error", [
    docker.errors.APIError("500", explanation=f"Head http://127.0.0.1:5000/v2/team/app/manifests/latest: unauthorized: "
                                              f"authentication required (tried {SECRET})"),
    docker.errors.APIError("500", explanation="Get http://127.0.0.1:5000/v2/: no basic auth credentials"),
])
def test_refused_credentials_name_registry_auth_and_never_the_password(error):
    exc = refused(FakeApi(error=error))
    assert (exc.status, exc.error, exc.extra["field"]) == (422, "registry authentication failed", "servers[a].registryAuth")
    assert exc.message.startswith("servers[a].registryAuth: the registry refused the credentials of user 'deploy'")
    assert SECRET not in exc.message


def test_an_error_inside_the_pull_stream_is_not_lost():
    """Docker answers 200 and reports some failures in the stream; the non-streaming call dropped them."""
    exc = refused(FakeApi(events=[{"status": "Pulling"}, {"error": "unauthorized: authentication required"}]))
    assert exc.error == "registry authentication failed"
    exc = refused(FakeApi(events=[{"error": "manifest for team/app:latest not found: manifest unknown"}]))
    assert (exc.error, exc.extra["field"]) == ("image unavailable", "servers[a].dockerImageUrl")
    assert "manifest unknown" in exc.message


def test_without_credentials_a_refusal_asks_for_them():
    exc = refused(FakeApi(error=docker.errors.APIError("500", explanation="unauthorized: authentication required")), auth=None)
    assert (exc.error, exc.extra["field"]) == ("registry authentication required", "servers[a].registryAuth")


def test_denied_without_credentials_is_the_image_with_a_hint():
    """Docker Hub's answer for a misspelt or a private repository alike."""
    text = "pull access denied for team/app, repository does not exist or may require 'docker login': denied"
    exc = refused(FakeApi(error=docker.errors.APIError("404", explanation=text)), auth=None)
    assert exc.extra["field"] == "servers[a].dockerImageUrl" and "private registry needs servers[a].registryAuth" in exc.message
    assert refused(FakeApi(error=docker.errors.APIError("404", explanation=text))).extra["field"] == "servers[a].registryAuth"


def want(policy: str, image_id: str | None = "sha256:old") -> reconcile.Desired:
    config = {"Image": "x:1", "Labels": {"agentopia.config_hash": "h"}}
    return reconcile.Desired("a", "mcp", config, "x:1", image_id, pull_policy=policy, auth=AUTH,
                             policy_field="servers[a].pullPolicy")


@pytest.mark.parametrize("policy, image_id, action, pulls", [
    ("missing", "sha256:old", "unchanged", False),
    ("missing", None, "create", True),
    ("missing", None, "start", False),
    ("always", "sha256:old", "unchanged", True),
    ("always", "sha256:old", "start", True),
    ("always", None, "conflict", False),
    ("never", "sha256:old", "create", False),
])
def test_a_plan_step_says_whether_the_apply_pulls(policy, image_id, action, pulls):
    step = reconcile.Step("a", action, "up to date", want(policy, image_id))
    view = step.view()
    assert view["pull"] is pulls
    assert ("pulled first (pullPolicy always)" in view["reason"]) is (policy == "always" and action != "conflict")
    assert SECRET not in repr(view) and SECRET not in repr(step)


def test_never_needs_the_image_on_the_host():
    reconcile.require_local(want("never"))
    reconcile.require_local(want("missing", None))
    with pytest.raises(ApiError) as info:
        reconcile.require_local(want("never", None))
    assert info.value.status == 422 and info.value.extra["field"] == "servers[a].pullPolicy"
    assert "not present on this host and pullPolicy is never" in info.value.message


def test_pull_first_pulls_each_always_image_once():
    api = FakeApi()
    reconcile.pull_first(api, [want("always"), want("always"), want("missing"), want("never")])
    assert len(api.pulls) == 1


def test_the_schema_keeps_the_password_out_of_reprs_and_dumps():
    body = schemas.ToolCreate(dockerImageUrl="x:1", instanceNameOnToolbox="t", accountToolInstanceId="a",
                              pullPolicy="always", registryAuth={"username": "u", "password": SECRET})
    assert body.registryAuth.auth_config() == {"username": "u", "password": SECRET}
    assert SECRET not in repr(body) and SECRET not in body.model_dump_json()
    assert schemas.ToolCreate(dockerImageUrl="x:1", instanceNameOnToolbox="t", accountToolInstanceId="a").pullPolicy == "missing"
    with pytest.raises(ValidationError) as info:
        schemas.McpServerSpec(instanceNameOnToolbox="s", dockerImageUrl="x:1", pullPolicy="sometimes",
                              registryAuth={"username": "u", "password": SECRET + "\ud800"})
    assert {e["loc"] for e in info.value.errors()} == {("pullPolicy",), ("registryAuth", "password")}
    assert SECRET not in str([e["msg"] for e in info.value.errors()])
