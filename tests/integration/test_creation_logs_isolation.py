"""Creation logs show an endpoint's own pip output only: two owners' endpoints with different
requirements on one Ray cluster (so one Serve controller job, whose runtime_env_setup log mixes
both), and neither owner's logs name the other's requirement."""

from __future__ import annotations

from tests.integration.test_endpoints import ENV, SMALL, args, client_for, make_echo, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle

# Installed in the server's environment already, so pip resolves them from the local index and
# the site packages quickly; each name appears in its own endpoint's pip output.
REQUIREMENT = {"alice": "idna", "bob": "jmespath"}


server = serving_server_fixture("pip-logs", "l{dir}")


def test_creation_logs_never_show_another_owners_requirements(server: ServerHandle) -> None:
    endpoints = {}
    for owner, requirement in REQUIREMENT.items():
        client = client_for(server, owner)
        bundle = client.create_model_bundle(
            f"{owner}-b", ENV, predict_fn_or_cls=make_echo(), requirements=[requirement]
        )
        endpoints[owner] = (client, client.create_model_endpoint(f"{owner}-ep", bundle, **SMALL))
    for _, ep in endpoints.values():
        wait_status(ep, "READY", timeout=300)
        assert ep.predict(args(x=1)).status == "SUCCESS"
    for owner, (client, ep) in endpoints.items():
        logs = client.read_endpoint_creation_logs(ep)
        other = next(r for o, r in REQUIREMENT.items() if o != owner)
        assert "(pip install)" in logs, logs
        assert REQUIREMENT[owner] in logs.split("(pip install)", 1)[1], logs
        assert other not in logs, logs
    for client, ep in endpoints.values():
        client.delete_model_endpoint(ep)
