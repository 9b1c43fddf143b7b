"""The registry across hosts in network name spaces: link cuts and mDNS discovery."""

import time

import pytest

from netns import Network
from support import Process, geryon, make_home, start_registry, wait_for


@pytest.fixture
def net():
    network = Network(2)
    yield network
    network.close()


@pytest.fixture
def cluster_home(tmp_path, net):
    return make_home(tmp_path / "admin", hosts=tuple(net.addresses))


def regquery_on(net, host, home, *args, **env):
    return geryon(home, "regquery", *args, **env) if host is None else \
        _in(net, host, home, "regquery", *args, **env)


def _in(net, host, home, *args, **env):
    import subprocess
    from support import GERYON, env_for
    result = subprocess.run([*net.prefix(host), GERYON, *args], env=env_for(home, **env),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_holder_whose_link_is_cut_is_dropped_within_5s(net, cluster_home):
    registry = start_registry(cluster_home, host=net.addresses[0], prefix=net.prefix(0))
    try:
        hold = Process(cluster_home, ["register", "-R", registry.address, "-a", "svc", "far",
                                      "--", "python3", "-m", "http.server", "--bind",
                                      net.addresses[1], "{port}"], prefix=net.prefix(1))
        query = lambda: _in(net, 0, cluster_home, "regquery", "-R", registry.address)  # noqa
        wait_for(lambda: "svc far" in query(), what="registration across the network")
        assert query().startswith(f"tcp!{net.addresses[1]}!")
        net.cut(1)
        cut = time.monotonic()
        wait_for(lambda: "svc far" not in query(), timeout=6, interval=0.2,
                 what="the cut-off holder's entry to go")
        assert time.monotonic() - cut < 5
        hold.stop()
    finally:
        registry.stop()


def test_mdns_discovery_between_name_spaces(net, cluster_home):
    registry = start_registry(cluster_home, host=net.addresses[0], prefix=net.prefix(0),
                              extra=["--mdns-interface", net.addresses[0]])
    try:
        out = _in(net, 1, cluster_home, "regquery", "-n",
                  GERYON_MDNS="on", GERYON_MDNS_INTERFACE=net.addresses[1])
        assert out == ""  # found the registry (an empty one) with no address configured
        geryon_home_register = Process(
            cluster_home, ["register", "-a", "svc", "found", "--", "python3", "-m",
                           "http.server", "--bind", net.addresses[1], "{port}"],
            prefix=net.prefix(1), GERYON_MDNS="on", GERYON_MDNS_INTERFACE=net.addresses[1])
        wait_for(lambda: "svc found" in _in(net, 0, cluster_home, "regquery", "-R",
                                            registry.address), what="mDNS-found registration")
        geryon_home_register.stop()
    finally:
        registry.stop()


def test_without_mdns_or_address_the_error_says_what_to_do(tmp_path):
    home = make_home(tmp_path / "lonely")
    result = geryon(home, "regquery")
    assert result.returncode == 1
    assert "no registry address" in result.stderr and "geryon join" in result.stderr
