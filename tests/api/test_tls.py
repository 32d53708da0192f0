"""etcd's API under TLS with client-certificate authentication (CLIENT_CERT, CLIENT_KEY,
TRUSTED_CA): etcdctl with a certificate the CA signed gets in; without one, or over plain
HTTP, it does not, and the node goes on serving those who may."""

from __future__ import annotations

import trio
import trustme

from global_kv.cli import LocalCluster

from .test_etcdctl import etcdctl


async def test_client_certificates_are_required_when_a_trusted_ca_is_set(tmp_path: object) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("etcdctl-user")
    stranger = trustme.CA().issue_cert("intruder")
    files = {}
    for name, blob in (
        ("ca.pem", ca.cert_pem),
        ("server.pem", server.cert_chain_pems[0]),
        ("server.key", server.private_key_pem),
        ("client.pem", client.cert_chain_pems[0]),
        ("client.key", client.private_key_pem),
        ("stranger.pem", stranger.cert_chain_pems[0]),
        ("stranger.key", stranger.private_key_pem),
    ):
        path = f"{tmp_path}/{name}"
        blob.write_to_path(path)
        files[name] = path
    env = {"CLIENT_CERT": files["server.pem"], "CLIENT_KEY": files["server.key"], "TRUSTED_CA": files["ca.pem"]}
    with trio.fail_after(90):
        async with LocalCluster(1, metrics=False, etcd_api=True, env=env) as cluster:
            await cluster.wait_for_leader()
            port = cluster.nodes[0].client_port
            https = f"https://127.0.0.1:{port}"
            mine = ["--cacert", files["ca.pem"], "--cert", files["client.pem"], "--key", files["client.key"]]
            theirs = ["--cacert", files["ca.pem"], "--cert", files["stranger.pem"], "--key", files["stranger.key"]]

            assert (await etcdctl(https, *mine, "put", "secret", "42"))[0] == 0
            code, _, _ = await etcdctl(https, "--cacert", files["ca.pem"], "--dial-timeout=2s", "get", "secret")
            assert code != 0  # no client certificate
            code, _, _ = await etcdctl(https, *theirs, "--dial-timeout=2s", "get", "secret")
            assert code != 0  # a certificate of another CA
            code, _, _ = await etcdctl(f"http://127.0.0.1:{port}", "--dial-timeout=2s", "get", "secret")
            assert code != 0  # plain HTTP/2 on the TLS port
            code, out, err = await etcdctl(https, *mine, "get", "secret")
            assert (code, out) == (0, "secret\n42\n"), err
