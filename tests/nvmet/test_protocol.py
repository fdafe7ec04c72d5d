"""NVMe/TCP protocol tests: the target on loopback, the project's initiator as the host."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from vms_mock.nvmet import NamespaceRecord
from vms_mock.nvmet import identify as idf
from vms_mock.nvmet import wire as w
from vms_mock.nvmet.initiator import Initiator, InitiatorQueue, TermReqReceived

from .conftest import HOST, HOST2, NGUID, NS_UUID, OTHER_SUBNQN, SIZE, STRANGER, SUBNQN, Env

LOOP = "127.0.0.1"


async def connect(env: Env, host: str = HOST, **kw: object) -> Initiator:
    return await Initiator.connect(LOOP, env.io_port, SUBNQN, host, **kw)  # type: ignore[arg-type]


def pattern(n: int, seed: int) -> bytes:
    block = bytes((seed + i) & 0xFF for i in range(251))
    return (block * (n // len(block) + 1))[:n]


# --- discovery ---------------------------------------------------------------------------------
def test_discovery_lists_only_subsystems_with_mappings(env: Env) -> None:
    async def scenario(env: Env) -> None:
        d = await Initiator.connect(LOOP, env.discovery_port, w.DISCOVERY_NQN, HOST, kato_ms=0)
        ident = d.identify_data
        assert ident[111] == idf.CNTRLTYPE_DISCOVERY
        assert w.nqn_field(ident, 768) == w.DISCOVERY_NQN
        entries = await d.discovery_entries()
        assert entries == [{"trtype": 3, "subtype": 2, "subnqn": SUBNQN, "traddr": LOOP,
                            "trsvcid": str(env.io_port)}]
        # A discovery controller has no I/O command set: identify namespace is refused.
        assert (await d.identify(idf.CNS_NAMESPACE, 1)).status == w.INVALID_FIELD
        assert (await d.get_log_page(w.LOG_SMART, 512)).status == w.INVALID_LOG_PAGE
        await d.close()

        stranger = await Initiator.connect(LOOP, env.discovery_port, w.DISCOVERY_NQN, STRANGER, kato_ms=0)
        assert await stranger.discovery_entries() == []
        await stranger.close()

    env.run(scenario)


def test_discovery_port_refuses_io_subsystems(env: Env) -> None:
    async def scenario(env: Env) -> None:
        with pytest.raises(w.NvmeError) as err:
            await Initiator.connect(LOOP, env.discovery_port, SUBNQN, HOST)
        assert err.value.status == w.CONNECT_INVALID_PARAM

    env.run(scenario)


# --- connect, access control, identify --------------------------------------------------------
def test_connect_refuses_unknown_subsystem_and_unmapped_host(env: Env) -> None:
    async def scenario(env: Env) -> None:
        with pytest.raises(w.NvmeError) as err:
            await Initiator.connect(LOOP, env.io_port, "nqn.2024-01.com.example:nope", HOST)
        assert err.value.status == w.CONNECT_INVALID_PARAM
        assert err.value.result == (1 << 16 | 256)  # IATTR connect data, IPO SUBNQN
        with pytest.raises(w.NvmeError) as err:
            await Initiator.connect(LOOP, env.io_port, SUBNQN, STRANGER)
        assert err.value.status == w.CONNECT_INVALID_HOST
        with pytest.raises(w.NvmeError) as err:  # subsystem exists, this host has no mapping in it
            await Initiator.connect(LOOP, env.io_port, OTHER_SUBNQN, HOST)
        assert err.value.status == w.CONNECT_INVALID_HOST

    env.run(scenario)


def test_identify_matches_what_the_linux_host_requires(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env)
        ident = c.identify_data
        assert int.from_bytes(ident[78:80], "little") == c.cntlid
        assert int.from_bytes(ident[320:322], "little") != 0  # KAS
        assert int.from_bytes(ident[1792:1796], "little") >= 4  # IOCCSZ
        assert int.from_bytes(ident[1796:1800], "little") >= 1  # IORCSZ
        assert int.from_bytes(ident[1800:1802], "little") == 0  # ICDOFF
        assert int.from_bytes(ident[514:516], "little") != 0  # MAXCMD
        assert int.from_bytes(ident[536:540], "little") & 3  # SGL support
        assert ident[111] == idf.CNTRLTYPE_IO
        assert w.nqn_field(ident, 768) == SUBNQN
        assert int.from_bytes(ident[92:96], "little") & idf.OAES_NS_ATTR

        active = (await c.identify(idf.CNS_ACTIVE_NS)).check().data
        assert struct.unpack_from("<2I", active) == (1, 0)
        ns = (await c.identify(idf.CNS_NAMESPACE, 1)).check().data
        assert struct.unpack_from("<Q", ns, 0)[0] == SIZE // 512
        assert ns[104:120] == NGUID
        assert ns[128 + 2] == 9  # LBADS: 512-byte blocks
        descs = (await c.identify(idf.CNS_NS_DESCRIPTORS, 1)).check().data
        found = {}
        pos = 0
        while descs[pos]:
            nidt, nidl = descs[pos], descs[pos + 1]
            found[nidt] = descs[pos + 4:pos + 4 + nidl]
            pos += 4 + nidl
        assert found[2] == NGUID and found[3] == NS_UUID.bytes and found[4] == b"\0"
        assert (await c.identify(idf.CNS_NS_DESCRIPTORS, 7)).status == w.INVALID_NS
        assert (await c.identify(idf.CNS_NAMESPACE, 7)).check().data == bytes(4096)  # inactive NSID
        assert (await c.identify(0x55)).status == w.INVALID_FIELD
        await c.close()

    env.run(scenario)


def test_properties_features_and_logs(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env, io_queues=0)
        cap = await c.property_get(w.PROP_CAP, size8=True)
        assert cap & 0xFFFF == idf.MQES and cap >> 37 & 1
        assert await c.property_get(w.PROP_VS) == idf.NVME_VS
        assert (await c.admin.submit(w.FABRICS, fctype=w.FCT_PROPERTY_GET, cdws={11: 0x99})).status \
            == w.INVALID_FIELD
        res = (await c.set_features(w.FEAT_NUM_QUEUES, 63 | 63 << 16)).check().result
        assert res == (idf.MAX_IO_QUEUES - 1) | (idf.MAX_IO_QUEUES - 1) << 16
        (await c.set_features(w.FEAT_ASYNC_EVENT, idf.OAES_NS_ATTR)).check()
        assert (await c.get_features(w.FEAT_ASYNC_EVENT)).check().result == idf.OAES_NS_ATTR
        (await c.set_features(w.FEAT_KATO, 7000)).check()
        assert (await c.get_features(w.FEAT_KATO)).check().result == 7000
        assert (await c.set_features(0xC3, 1)).status == w.INVALID_FIELD
        (await c.keep_alive()).check()
        smart = (await c.get_log_page(w.LOG_SMART, 512)).check().data
        assert struct.unpack_from("<H", smart, 1)[0] > 0
        (await c.get_log_page(w.LOG_ERROR, 64)).check()
        assert (await c.get_log_page(0x42, 512)).status == w.INVALID_LOG_PAGE
        assert (await c.admin.submit(0xEE)).status == w.INVALID_OPCODE
        # Shutdown notification: CSTS.SHST reports "complete".
        await c.property_set(w.PROP_CC, 1 | 1 << 14 | 6 << 16 | 4 << 20)
        assert (await c.property_get(w.PROP_CSTS)) >> 2 & 3 == 2
        await c.close()

    env.run(scenario)


def test_commands_before_enable_and_before_connect_are_refused(env: Env) -> None:
    async def scenario(env: Env) -> None:
        q = await InitiatorQueue.open(LOOP, env.io_port)
        assert (await q.submit(w.ADM_IDENTIFY, cdws={10: 1}, read_len=4096)).status == w.INVALID_OPCODE
        hostid = bytes(16)
        (await Initiator.fabrics_connect(q, subnqn=SUBNQN, hostnqn=HOST, hostid=hostid, qid=0,
                                         sqsize=32)).check()
        assert (await q.submit(w.ADM_IDENTIFY, cdws={10: 1}, read_len=4096)).status == w.CMD_SEQ_ERROR
        # A second Connect on a connected queue is a sequence error.
        assert (await Initiator.fabrics_connect(q, subnqn=SUBNQN, hostnqn=HOST, hostid=hostid, qid=0,
                                                sqsize=32)).status == w.CMD_SEQ_ERROR
        await q.close()

    env.run(scenario)


def test_io_queue_connect_checks_controller_and_qid(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env, io_queues=0)
        (await c.set_features(w.FEAT_NUM_QUEUES, 1 | 1 << 16)).check()
        hostid = bytes(16)
        q = await InitiatorQueue.open(LOOP, env.io_port)
        for cntlid, host, qid, want in ((c.cntlid + 50, HOST, 1, w.CONNECT_INVALID_PARAM),
                                        (c.cntlid, HOST2, 1, w.CONNECT_INVALID_PARAM),
                                        (c.cntlid, HOST, 3, w.CONNECT_INVALID_PARAM),
                                        (c.cntlid, HOST, 2, 0)):
            got = await Initiator.fabrics_connect(q, subnqn=SUBNQN, hostnqn=host, hostid=hostid, qid=qid,
                                                  sqsize=32, cntlid=cntlid)
            assert got.status == want, (cntlid, host, qid)
        q2 = await InitiatorQueue.open(LOOP, env.io_port)  # qid 2 is taken
        got = await Initiator.fabrics_connect(q2, subnqn=SUBNQN, hostnqn=HOST, hostid=hostid, qid=2,
                                              sqsize=32, cntlid=c.cntlid)
        assert got.status == w.CONNECT_INVALID_PARAM
        await q.close()
        await q2.close()
        await c.close()

    env.run(scenario)


# --- data path -----------------------------------------------------------------------------------
@pytest.mark.parametrize("digests", [False, True], ids=["plain", "digests"])
def test_write_read_inline_and_r2t(env: Env, digests: bool) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env, hdgst=digests, ddgst=digests)
        assert c.admin.hdgst == digests and c.admin.ddgst == digests
        small = pattern(4096, 1)  # fits in the capsule
        big = pattern(1 << 20, 2)  # needs R2T/H2CData
        (await c.write(1, 8, small)).check()
        (await c.write(1, 4096, big, fua=True)).check()
        assert (await c.read(1, 8, 8)).check().data == small
        assert (await c.read(1, 4096, 2048)).check().data == big
        (await c.flush(1)).check()
        with open(env.backing, "rb") as f:
            f.seek(8 * 512)
            assert f.read(4096) == small
            f.seek(4096 * 512)
            assert f.read(1 << 20) == big
        await c.close()

    env.run(scenario)


def test_several_io_queues_with_deep_queues(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env, io_queues=4, queue_size=64)
        assert len(c.io) == 4
        blocks = {i: pattern(16384, i) for i in range(256)}  # 64 commands in flight per queue

        async def put(i: int) -> None:
            (await c.write(1, i * 32, blocks[i], qid=i % 4 + 1)).check()

        await asyncio.gather(*(put(i) for i in blocks))
        reads = await asyncio.gather(*(c.read(1, i * 32, 32, qid=(i + 1) % 4 + 1) for i in blocks))
        for i, r in zip(blocks, reads, strict=True):
            assert r.check().data == blocks[i]
        await c.close()

    env.run(scenario)


def test_two_hosts_share_a_namespace(env: Env) -> None:
    async def scenario(env: Env) -> None:
        a = await connect(env, HOST)
        b = await connect(env, HOST2)
        assert a.cntlid != b.cntlid
        (await a.write(1, 0, pattern(4096, 7))).check()
        assert (await b.read(1, 0, 8)).check().data == pattern(4096, 7)
        smart_a = (await a.get_log_page(w.LOG_SMART, 512)).check().data  # per controller counters
        smart_b = (await b.get_log_page(w.LOG_SMART, 512)).check().data
        assert int.from_bytes(smart_a[48:64], "little") == 1 and int.from_bytes(smart_a[80:96], "little") == 1
        assert int.from_bytes(smart_a[64:80], "little") == 0
        assert int.from_bytes(smart_b[32:48], "little") == 1 and int.from_bytes(smart_b[64:80], "little") == 1
        await a.close()
        await b.close()

    env.run(scenario)


def test_out_of_range_and_bad_lengths_never_touch_the_file(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env)
        last = SIZE // 512
        assert (await c.write(1, last - 1, pattern(1024, 3))).status == w.LBA_RANGE
        assert (await c.write(1, 1 << 40, pattern(512, 3))).status == w.LBA_RANGE
        assert (await c.read(1, last, 1)).status == w.LBA_RANGE
        assert (await c.write_zeroes(1, last - 2, 4)).status == w.LBA_RANGE
        assert (await c.deallocate(1, [(last - 1, 2)])).status == w.LBA_RANGE
        assert (await c.write(7, 0, pattern(512, 3))).status == w.INVALID_NS
        assert (await c.io[0].submit(0x7E, nsid=1)).status == w.INVALID_OPCODE
        # NLB says 2 blocks, the SGL carries 1 block: refused, nothing written.
        got = await c.io[0].submit(w.IO_WRITE, nsid=1, write_data=pattern(512, 4), cdws={10: 0, 12: 1})
        assert got.status == w.SGL_INVALID_DATA
        # Read with a transfer length larger than MDTS.
        got = await c.io[0].submit(w.IO_READ, nsid=1, read_len=2 << 20, cdws={10: 0, 12: 4095})
        assert got.status == w.INVALID_FIELD
        (await c.write(1, last - 1, pattern(512, 5))).check()  # the very last block is fine
        await c.close()
        assert os.path.getsize(env.backing) == SIZE
        with open(env.backing, "rb") as f:
            assert f.read(4096) == bytes(4096)

    env.run(scenario)


def test_write_zeroes_and_deallocate_punch_holes(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env)
        data = pattern(1 << 20, 9)
        (await c.write(1, 0, data)).check()
        (await c.write(1, 2048, data)).check()
        (await c.flush(1)).check()
        before = os.stat(env.backing).st_blocks
        (await c.write_zeroes(1, 0, 2048)).check()
        (await c.deallocate(1, [(2048, 1024), (3072 + 512, 512)])).check()
        # a transfer longer than the ranges is fine (Linux does that), a shorter one is not
        one_range = struct.pack("<IIQ", 0, 8, 4096)
        (await c.io[0].submit(w.IO_DSM, nsid=1, write_data=one_range + bytes(4080),
                              cdws={10: 0, 11: 1 << 2})).check()
        short = await c.io[0].submit(w.IO_DSM, nsid=1, write_data=one_range, cdws={10: 1, 11: 1 << 2})
        assert short.status == w.SGL_INVALID_DATA
        assert os.stat(env.backing).st_blocks < before
        assert (await c.read(1, 0, 2048)).check().data == bytes(1 << 20)
        got = (await c.read(1, 2048, 2048)).check().data
        assert got[:512 << 10] == bytes(512 << 10)
        assert got[512 << 10:768 << 10] == data[512 << 10:768 << 10]  # untouched range keeps its data
        assert got[768 << 10:] == bytes(256 << 10)
        await c.close()

    env.run(scenario)


def test_data_digest_error_fails_the_command_and_writes_nothing(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env, hdgst=True, ddgst=True)
        q = c.io[0]
        data = pattern(4096, 11)
        sqe = w.build_sqe(w.IO_WRITE, 77, 1, {10: 0, 12: 7}, (w.SGL_DATA_BLOCK_OFFSET, 0, len(data)))
        frame = bytearray(q._frame(w.CAPSULE_CMD, 0, sqe, data))
        frame[-1] ^= 0xFF  # corrupt the data digest
        loop = asyncio.get_running_loop()
        from vms_mock.nvmet.initiator import _Inflight
        fut = loop.create_future()
        q._inflight[77] = _Inflight(fut)
        await q.send_raw(bytes(frame))
        done = await asyncio.wait_for(fut, 5)
        assert done.status == w.TRANSIENT_TRANSPORT
        assert (await c.read(1, 0, 8)).check().data == bytes(4096)
        await c.close()

    env.run(scenario)


# --- malformed PDUs ------------------------------------------------------------------------------
MALFORMED = {
    "unknown-pdu-type": w.header(0x0E, 0, 24, 0, 24) + bytes(16),
    "c2h-type-from-host": w.header(w.C2H_DATA, 0, 24, 0, 24) + bytes(16),
    "bad-hlen": w.header(w.CAPSULE_CMD, 0, 40, 0, 72) + bytes(64),
    "plen-shorter-than-header": w.header(w.CAPSULE_CMD, 0, 72, 0, 30) + bytes(64),
    "plen-huge": w.header(w.CAPSULE_CMD, 0, 72, 72, 1 << 30) + bytes(64),
    "bad-pdo": w.header(w.CAPSULE_CMD, 0, 72, 10, 72 + 512) + bytes(64) + bytes(512),
    "h2c-data-without-r2t": w.header(w.H2C_DATA, 0, 24, 24, 24 + 512) + w.DATA_HDR.pack(1, 5, 0, 512)
    + bytes(512),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_pdu_terminates_only_that_connection(env: Env, name: str) -> None:
    async def scenario(env: Env) -> None:
        bystander = await connect(env, HOST2)
        c = await connect(env)
        await c.io[0].send_raw(MALFORMED[name])
        why = await c.io[0].wait_closed()
        assert isinstance(why, TermReqReceived), why
        assert why.fes == w.FES_INVALID_HEADER_FIELD
        # The other host is unaffected, and so is this host's admin queue.
        (await bystander.write(1, 0, pattern(4096, 1))).check()
        assert (await bystander.read(1, 0, 8)).check().data == pattern(4096, 1)
        (await c.keep_alive()).check()
        await bystander.close()
        await c.close()

    env.run(scenario)


def test_header_digest_error_and_missing_icreq(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env, hdgst=True)
        sqe = w.build_sqe(w.IO_FLUSH, 5, 1)
        frame = bytearray(c.io[0]._frame(w.CAPSULE_CMD, 0, sqe))
        frame[75] ^= 0x01  # a bit of the header digest
        await c.io[0].send_raw(bytes(frame))
        why = await c.io[0].wait_closed()
        assert isinstance(why, TermReqReceived) and why.fes == w.FES_HEADER_DIGEST_ERROR

        r, wr = await asyncio.open_connection(LOOP, env.io_port)
        wr.write(w.header(w.CAPSULE_CMD, 0, 72, 0, 72) + bytes(64))  # no ICReq first
        term = await asyncio.wait_for(r.read(1024), 5)
        assert term[0] == w.C2H_TERM_REQ and struct.unpack_from("<H", term, 8)[0] == w.FES_PDU_SEQUENCE_ERROR
        assert await asyncio.wait_for(r.read(1024), 5) == b""  # closed
        wr.close()
        (await c.keep_alive()).check()
        await c.close()

    env.run(scenario)


def test_h2c_data_beyond_the_r2t_terminates(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env)
        q = c.io[0]
        q.inline_limit = 0  # force R2T
        orig = q._send_h2c

        async def overflow(cid: int, ttag: int, payload: bytes, off: int, length: int) -> None:
            await orig(cid, ttag, payload + bytes(512), off, length + 512)

        q._send_h2c = overflow  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await q.submit(w.IO_WRITE, nsid=1, write_data=pattern(4096, 2), cdws={10: 0, 12: 7})
        assert isinstance(q.error, TermReqReceived) and q.error.fes == w.FES_DATA_OUT_OF_RANGE
        await c.close()
        with open(env.backing, "rb") as f:
            assert f.read(8192) == bytes(8192)

    env.run(scenario)


def test_random_garbage_never_kills_the_target(env: Env) -> None:
    import random

    async def scenario(env: Env) -> None:
        rng = random.Random(1234)
        for _ in range(40):
            r, wr = await asyncio.open_connection(LOOP, env.io_port)
            icreq = bytearray(128)
            struct.pack_into("<BBBBI", icreq, 0, w.ICREQ, 0, 128, 0, 128)
            junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
            if rng.random() < 0.5:
                junk = bytes(icreq) + junk
            wr.write(junk)
            await wr.drain()
            with __import__("contextlib").suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(r.read(4096), 0.2)
            wr.close()
        c = await connect(env)
        (await c.write(1, 0, pattern(512, 1))).check()
        await c.close()
        assert os.path.getsize(env.backing) == SIZE

    env.run(scenario)


# --- asynchronous events, namespace changes, keep-alive ------------------------------------------
def test_resize_sends_namespace_changed_event(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env)
        (await c.set_features(w.FEAT_ASYNC_EVENT, idf.OAES_NS_ATTR)).check()
        aer = asyncio.create_task(c.async_event(timeout=10))
        await asyncio.sleep(0.1)
        assert not aer.done()
        env.provider.resize(SUBNQN, 1, 2 * SIZE)
        ev = (await aer).check()
        assert ev.result & 7 == 2 and (ev.result >> 8) & 0xFF == 0 and (ev.result >> 16) & 0xFF == 4
        log = (await c.get_log_page(w.LOG_CHANGED_NS, 4096)).check().data
        assert struct.unpack_from("<2I", log) == (1, 0)
        assert (await c.get_log_page(w.LOG_CHANGED_NS, 4096)).check().data == bytes(4096)  # cleared
        ns = (await c.identify(idf.CNS_NAMESPACE, 1)).check().data
        assert struct.unpack_from("<Q", ns)[0] == 2 * SIZE // 512
        (await c.write(1, 2 * SIZE // 512 - 1, pattern(512, 3))).check()  # the new end is writable
        await c.close()

    env.run(scenario)


def test_new_mapping_appears_and_unmapping_removes(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env)
        (await c.set_features(w.FEAT_ASYNC_EVENT, idf.OAES_NS_ATTR)).check()
        aer = asyncio.create_task(c.async_event(timeout=10))
        path = env.make_backing("vol2", 8 << 20)
        rec = NamespaceRecord.of(nsid=2, volume_id=102, nguid="ffeeddccbbaa99887766554433221100",
                                 uuid="2b5c1c1e-86f2-4f43-9d49-b1f2e0c4a001", size=8 << 20,
                                 backing_path=str(path))
        env.provider.add_namespace(SUBNQN, rec, hosts=[HOST])
        (await aer).check()
        active = (await c.identify(idf.CNS_ACTIVE_NS)).check().data
        assert struct.unpack_from("<3I", active) == (1, 2, 0)
        (await c.get_log_page(w.LOG_CHANGED_NS, 4096)).check()
        aer2 = asyncio.create_task(c.async_event(timeout=10))
        env.provider.unmap_host(SUBNQN, HOST, 2)
        (await aer2).check()
        assert (await c.write(2, 0, pattern(512, 1))).status == w.INVALID_NS
        await c.close()

    env.run(scenario)


def test_async_event_request_limit(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env, io_queues=0)
        pending = [asyncio.create_task(c.async_event(timeout=10)) for _ in range(idf.AERL + 1)]
        await asyncio.sleep(0.1)
        assert (await c.async_event()).status == w.AER_LIMIT
        for t in pending:
            t.cancel()
        await c.close()

    env.run(scenario)


def test_keep_alive_timeout_tears_down_the_controller(env: Env) -> None:
    async def scenario(env: Env) -> None:
        alive = await connect(env, HOST2, kato_ms=1500)  # generous: a loaded CI machine stalls
        idle = await connect(env, kato_ms=300)
        for _ in range(8):  # 1.6 s: well past 2 x KATO for the idle host
            await asyncio.sleep(0.2)
            (await alive.keep_alive()).check()
        assert isinstance(await idle.admin.wait_closed(2), ConnectionError)
        assert isinstance(await idle.io[0].wait_closed(2), ConnectionError)
        assert env.target is not None and idle.cntlid not in env.target.controllers
        (await alive.write(1, 0, pattern(512, 1))).check()
        await alive.close()
        await idle.close()

    env.run(scenario)


def test_disconnect_closes_the_queue(env: Env) -> None:
    async def scenario(env: Env) -> None:
        c = await connect(env)
        (await c.io[0].submit(w.FABRICS, fctype=w.FCT_DISCONNECT)).check()
        await c.io[0].wait_closed(2)
        assert c.io[0].error is not None
        (await c.keep_alive()).check()
        await c.close()
        await asyncio.sleep(0.1)
        assert env.target is not None and not env.target.controllers

    env.run(scenario)
