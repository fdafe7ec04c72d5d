"""Every resource family through vms_client against a real vms-mock process."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.vms_client.conftest import ClientFactory, Recorder, uniq
from vms_client import VmsClient
from vms_client.errors import InUse, InvalidRequest, MultipleFound, NotFound, TaskFailed
from vms_client.models import (
    BlockHostCreate,
    QuotaCreate,
    SnapshotCreate,
    ViewCreate,
    VolumeCreate,
)

MIB = 1 << 20


def test_versions_and_cluster_capacity(client: VmsClient) -> None:
    assert re.fullmatch(r"\d+\.\d+(\.\d+)*", client.versions.current())
    cap = client.clusters.capacity()
    assert cap.usable_bytes > 0 and 0 <= cap.free_bytes <= cap.usable_bytes
    assert client.clusters.get(client.clusters.list()[0].id).usable_capacity_bytes == cap.usable_bytes


def test_tenant_lifecycle_and_idempotent_delete(client: VmsClient) -> None:
    name = uniq("tenant")
    t = client.tenants.create(name=name)
    assert client.tenants.get(t.id).name == name
    found = client.tenants.find_one(name=name)
    assert found is not None and found.id == t.id
    renamed = client.tenants.update(t.id, name=name + "-x")
    assert renamed.name == name + "-x"
    assert client.tenants.find_one(name=name) is None
    assert client.tenants.delete(t.id) is True
    with pytest.raises(NotFound):
        client.tenants.get(t.id)
    with pytest.raises(NotFound) as err:
        client.tenants.delete(t.id)
    assert err.value.status == 404 and err.value.method == "DELETE"
    assert err.value.path == f"/api/v1/tenants/{t.id}/"
    assert client.tenants.delete(t.id, missing_ok=True) is False


def test_policies_and_vip_pools(client: VmsClient) -> None:
    vp = client.viewpolicies.create(name=uniq("vp"), tenant_id=1, flavor="S3_NATIVE")
    assert vp.extra("flavor") == "S3_NATIVE" and vp.tenant_id == 1
    assert client.viewpolicies.find_one(name=vp.name, tenant_id=1) is not None
    qos = client.qospolicies.create(name=uniq("qos"), policy_type="VOLUME",
                                    static_limits={"max_reads_iops": 500})
    assert client.qospolicies.get(qos.id).extra("static_limits")["max_reads_iops"] == 500
    pool = client.vippools.create(name=uniq("pool"), ip_ranges=[["127.0.0.2", "127.0.0.9"]])
    assert client.vippools.get(pool.id).ip_ranges == [["127.0.0.2", "127.0.0.9"]]
    for res, obj_id in ((client.vippools, pool.id), (client.qospolicies, qos.id),
                        (client.viewpolicies, vp.id)):
        res.delete(obj_id)
        assert res.delete(obj_id, missing_ok=True) is False


def test_nfs_s3_and_block_views(client: VmsClient) -> None:
    policy = client.viewpolicies.find_one(name="default", tenant_id=1)
    s3_policy = client.viewpolicies.find_one(name="s3-default", tenant_id=1)
    assert policy is not None and s3_policy is not None
    nfs_path = "/" + uniq("nfs")
    nfs = client.views.create(ViewCreate.nfs(nfs_path, policy.id))
    assert nfs.protocols == ["NFS"] and nfs.path == nfs_path

    owner = client.users.create(name=uniq("owner"))
    bucket = uniq("bkt")
    s3 = client.views.create(ViewCreate.s3_bucket("/" + bucket, bucket, str(owner.name), s3_policy.id))
    got = client.views.find_one(bucket=bucket)
    assert got is not None and got.id == s3.id and got.bucket_owner == owner.name

    sub = client.views.create(ViewCreate.block_subsystem(uniq("sub"), "/" + uniq("sub")))
    assert sub.nqn and sub.nqn.startswith("nqn.")
    assert client.views.update(sub.id, alias="/alias-" + uniq("a")).alias

    for v in (nfs, s3, sub):
        client.views.delete(v.id)
    client.users.delete(owner.id)


def test_quotas_exact_lookup_is_not_a_substring_match(client: VmsClient) -> None:
    base = uniq("q")
    short = client.quotas.create(QuotaCreate(name=base, path=f"/{base}", hard_limit=10 * MIB))
    longer = client.quotas.create(name=base + "b", path=f"/{base}b", hard_limit=MIB)
    found = client.quotas.find_one(name=base)
    assert found is not None and found.id == short.id
    assert found.hard_limit == 10 * MIB
    assert {q.id for q in client.quotas.list(name__startswith=base)} == {short.id, longer.id}
    assert client.quotas.find_one(path=f"/{base}b") is not None
    with pytest.raises(ValueError, match="not an exact match"):
        client.quotas.find_one(path__contains=base)
    assert client.quotas.update(short.id, hard_limit=20 * MIB).hard_limit == 20 * MIB
    assert client.quotas.get(short.id).hard_limit == 20 * MIB
    client.quotas.delete(short.id)
    client.quotas.delete(longer.id)


def test_find_one_refuses_ambiguity(client: VmsClient) -> None:
    # the seed gives tenant 1 two view policies ("default" and "s3-default")
    with pytest.raises(MultipleFound):
        client.viewpolicies.find_one(tenant_id=1)


def test_users_and_access_keys(client: VmsClient) -> None:
    user = client.users.create(name=uniq("user"), allow_create_bucket=True)
    assert user.uid is not None and user.allow_create_bucket is True
    pair = client.users.create_access_key(user.id)
    assert pair.access_key and len(pair.secret_key.get_secret_value()) >= 20
    listed = client.users.get(user.id)
    assert [k.key for k in listed.access_keys] == [pair.access_key]
    assert pair.secret_key.get_secret_value() not in listed.model_dump_json()
    assert client.users.delete_access_key(user.id, pair.access_key) is True
    assert client.users.get(user.id).access_keys == []
    with pytest.raises(NotFound):
        client.users.delete_access_key(user.id, pair.access_key)
    assert client.users.delete_access_key(user.id, pair.access_key, missing_ok=True) is False
    assert client.users.update(user.id, allow_delete_bucket=True).allow_delete_bucket is True
    client.users.delete(user.id)


def test_s3_policies(client: VmsClient) -> None:
    doc = {"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::b/*"]}]}
    pol = client.s3policies.create(name=uniq("pol"), policy=json.dumps(doc), enabled=True)
    assert json.loads(str(client.s3policies.get(pol.id).policy)) == doc
    user = client.users.create(name=uniq("puser"), s3_policies_ids=[pol.id])
    assert user.s3_policies_ids == [pol.id]
    client.users.delete(user.id)
    client.s3policies.delete(pol.id)


def test_volumes_hosts_mapping_snapshots_and_clone(client: VmsClient) -> None:
    sub = client.views.find_one(name="block-default")
    assert sub is not None and sub.nqn
    vname = "/" + uniq("grp") + "/vol"
    vol = client.volumes.create(VolumeCreate(name=vname, view_id=sub.id, size=4 * MIB))
    assert vol.nguid and vol.uuid and vol.size == 4 * MIB and vol.subsystem_name == "block-default"
    assert client.volumes.update(vol.id, size=8 * MIB).size == 8 * MIB
    assert client.volumes.find_one(name=vname) is not None

    host = client.blockhosts.create(BlockHostCreate(name=uniq("host"),
                                                    nqn=f"nqn.2014-08.org.nvmexpress:uuid:{uniq('h')}"))
    task = client.blockhostvolumes.bulk_add([(host.id, vol.id)])
    done = client.vtasks.wait(task.id, timeout=30)
    assert done.state == "COMPLETED"
    maps = client.blockhostvolumes.list(volume__id=vol.id, block_host__id=host.id)
    assert [(m.volume.id, m.block_host.id) for m in maps] == [(vol.id, host.id)]
    assert client.blockhostvolumes.find_one(volume__id=vol.id) is not None

    with pytest.raises(InUse):  # mapped: a plain delete is refused...
        client.volumes.delete(vol.id)

    snap = client.snapshots.create(SnapshotCreate(name=uniq("snap"), path=f"{sub.path}{vname}/"))
    assert snap.created is not None and snap.path == f"{sub.path}{vname}/"
    clone = client.snapshots.clone_volume(snap.id, target_subsystem_id=sub.id,
                                          target_volume_path=vname + "-clone")
    assert clone.size == 8 * MIB and clone.uuid != vol.uuid

    client.blockhostvolumes.bulk_remove([(host.id, vol.id)], wait=30)
    assert client.blockhostvolumes.list(volume__id=vol.id) == []
    client.blockhostvolumes.bulk_add([(host.id, vol.id)], wait=30)
    assert client.volumes.delete(vol.id, force=True)  # ...force also unmaps
    assert client.blockhostvolumes.list(volume__id=vol.id) == []
    client.snapshots.delete(snap.id)
    client.volumes.delete(clone.id)
    client.blockhosts.delete(host.id)


def test_delete_folder(client: VmsClient) -> None:
    policy = client.viewpolicies.find_one(name="default", tenant_id=1)
    assert policy is not None
    path = "/" + uniq("folder")
    view = client.views.create(ViewCreate.nfs(path, policy.id))
    client.views.delete(view.id)
    client.folders.delete_folder(path, tenant_id=1)
    with pytest.raises(NotFound):
        client.folders.delete_folder(path, tenant_id=1)


def test_managers_and_api_tokens(client: VmsClient, make_client: ClientFactory) -> None:
    mgr = client.managers.create(username=uniq("mgr"), password="Mgr-pass-123", role="super_admin")
    assert mgr.password is None  # never read back
    tok = client.apitokens.create(name=uniq("tok"))
    assert tok.token is not None
    by_token = make_client(api_token=tok.token.get_secret_value())
    assert by_token.transport.config.uses_api_token
    assert by_token.versions.current() == client.versions.current()
    assert by_token.managers.get(mgr.id).username == mgr.username
    client.managers.delete(mgr.id)


def test_invalid_body_names_the_field(client: VmsClient) -> None:
    sub = client.views.find_one(name="block-default")
    assert sub is not None
    with pytest.raises(InvalidRequest) as err:  # the server checks the 512-byte multiple
        client.volumes.create(name="/" + uniq("bad"), view_id=sub.id, size=1000)
    assert "size" in err.value.fields and err.value.status == 400
    with pytest.raises(InvalidRequest) as err:  # unknown fields pass the client, the server names them
        client.quotas.create(name=uniq("q"), path="/x", hard_limitt=5)
    assert "hard_limitt" in err.value.fields


def test_pagination_follows_next_over_1000_objects(vms: object, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(observer=rec)
    prefix = uniq("page")
    n = 1050
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.quotas.create(name=f"{prefix}-{i:05d}", path=f"/{prefix}/{i}"),
                      range(n)))
    before = rec.count("GET", "quotas")
    listed = client.quotas.list(name__startswith=prefix)
    assert len(listed) == n
    assert len({q.id for q in listed}) == n  # no page returned twice
    assert rec.count("GET", "quotas") - before == 2  # page_size=1000: two pages
    small = make_client(page_size=100)
    assert len(list(small.quotas.iter(name__startswith=prefix))) == n


def test_failed_vtask_raises_task_failed(client: VmsClient) -> None:
    host = client.blockhosts.create(name=uniq("fhost"), nqn=f"nqn.2014-08.org.nvmexpress:uuid:{uniq('f')}")
    task = client.blockhostvolumes.bulk_add([(host.id, 2_000_000_000)])  # no such volume
    with pytest.raises(TaskFailed) as err:
        client.vtasks.wait(task.id, timeout=30)
    assert f"vtask {task.id} failed" in str(err.value)
    assert client.vtasks.get(task.id).state == "FAILED"
    client.blockhosts.delete(host.id)
