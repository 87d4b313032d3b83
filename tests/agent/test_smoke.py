from conftest import BUSYBOX


def test_health_needs_no_token_and_status_does(agent):
    import requests
    assert requests.get(agent.url + "/health", timeout=5).json()["status"] == "ok"
    assert requests.get(agent.url + "/status", timeout=5).status_code == 401
    assert agent.get("/status").status_code == 200


def test_docker_down_then_recovery(make_agent, docker_proxy):
    a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
    assert a.get("/health").status_code == 200
    docker_proxy.stop()
    r = a.get("/health")
    assert r.status_code == 503 and r.json()["docker"] is False
    assert a.get("/tools/status").status_code == 503
    docker_proxy.start()
    assert a.get("/health").status_code == 200
    assert a.get("/tools/status").status_code == 200
    assert BUSYBOX
