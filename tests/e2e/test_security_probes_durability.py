"""Security probes that held (issue 9): durability under an attacker's (or an accident's) worst
timing.

- `kill -9` in the middle of a burst of concurrent API writes: every write the server
  acknowledged is there after a restart (creations and deletions alike), on SQLite and on
  PostgreSQL. (test_service_networks.py's restart test covers one quiet write; this one kills the
  process with writes in flight.)
- A full disk: with the data dir on a small tmpfs filled to the last byte, API writes fail with a
  5xx AWS error, the server stays up and serves reads, writes work again once space is freed, and
  nothing acknowledged is lost across a restart. SQLite only: with PostgreSQL the writes go to the
  database's own disk, not the data dir. Needs root (mount); fails loudly without it.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from conftest import Server, unique

BURST_ACKS = 300
WRITERS = 4


def all_service_ids(client):
    ids, token = set(), None
    while True:
        page = client.list_services(**({"nextToken": token} if token else {}))
        ids.update(s["id"] for s in page["items"])
        token = page.get("nextToken")
        if not token:
            return ids


class Burst:
    """Concurrent writers: creators (create_service) and churners (create then delete). Each
    records only what the server acknowledged, and stops at its first failure."""

    def __init__(self, server):
        self.server = server
        self.lock = threading.Lock()
        self.created = set()  # acknowledged creations that were not deleted
        self.deleted = set()  # acknowledged deletions
        # Deletions sent but not acknowledged: the kill may land after the commit and before the
        # reply, so these services may be gone or not, and neither is a loss.
        self.deleting = set()
        self.acks = 0
        self.errors = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 1,), daemon=True) for i in range(WRITERS)]

    def ack(self, created=None, deleted=None):
        with self.lock:
            if created:
                self.created.add(created)
            if deleted:
                self.created.discard(deleted)
                self.deleting.discard(deleted)
                self.deleted.add(deleted)
            self.acks += 1

    def run(self, churn):
        client = self.server.client()
        try:
            # Bounded: the main thread kills the server long before this many writes.
            for _ in range(1000):
                if self.stop.is_set():
                    return
                sid = client.create_service(name=unique("burst"))["id"]
                self.ack(created=sid)
                if churn:
                    with self.lock:
                        self.deleting.add(sid)
                    client.delete_service(serviceIdentifier=sid)
                    self.ack(deleted=sid)
        except (ClientError, EndpointConnectionError, ConnectionError, OSError) as e:
            self.errors.append(e)
        except Exception as e:  # botocore wraps connection resets in several classes
            self.errors.append(e)


def test_kill9_during_write_burst_loses_nothing_acknowledged(server):
    burst = Burst(server)
    for t in burst.threads:
        t.start()
    deadline = time.monotonic() + 120
    while burst.acks < BURST_ACKS:
        assert time.monotonic() < deadline, f"only {burst.acks} writes acknowledged: {burst.errors[:3]}"
        assert all(t.is_alive() for t in burst.threads), f"a writer stopped early: {burst.errors[:3]}"
        time.sleep(0.01)
    # Writes are in flight on every thread at this moment.
    server.kill9()
    burst.stop.set()
    for t in burst.threads:
        t.join(timeout=60)
        assert not t.is_alive()
    server.start()
    with burst.lock:
        created, deleted, acks = set(burst.created), set(burst.deleted), burst.acks
        unsure = set(burst.deleting)
    assert acks >= BURST_ACKS and deleted
    # At most one deletion per churner can be in flight at the kill.
    assert len(unsure) <= WRITERS // 2
    ids = all_service_ids(server.client())
    missing = created - unsure - ids
    assert not missing, f"{len(missing)} of {len(created)} acknowledged creations lost"
    resurrected = deleted & ids
    assert not resurrected, f"{len(resurrected)} acknowledged deletions undone"


# ---------------------------------------------------------------------------------------------
# A full disk.

TMPFS_SIZE = "24m"
# 50 tags of 128 + 256 characters: each write is ~20 KB of database content, so the disk fills
# within a few hundred writes whatever the database's free pages were.
BIG_TAGS = {f"k{i:02d}-" + "k" * 120: "v" * 256 for i in range(50)}


class TmpfsServer(Server):
    """A SQLite server whose data dir is a fresh tmpfs mount of TMPFS_SIZE; its log is kept
    outside the mount, so that a full disk does not also silence (or break) its stderr."""

    def __init__(self):
        super().__init__("sqlite")
        os.rmdir(self.data_dir)
        self.mount = tempfile.mkdtemp(prefix="trellis-tmpfs-")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", self.mount],
                           capture_output=True, text=True)
        if p.returncode != 0:
            os.rmdir(self.mount)
            raise RuntimeError(f"the full-disk probe needs to mount a tmpfs (run as root): {p.stderr}")
        self.data_dir = os.path.join(self.mount, "data")
        os.mkdir(self.data_dir)
        self.log_dir = tempfile.mkdtemp(prefix="trellis-tmpfs-log-")
        self.log_path = os.path.join(self.log_dir, "server.log")

    def cleanup(self):
        self.stop()
        subprocess.run(["umount", self.mount], check=True)
        os.rmdir(self.mount)
        shutil.rmtree(self.log_dir, ignore_errors=True)


@pytest.fixture
def tmpfs_server():
    s = TmpfsServer()
    try:
        yield s.start()
    finally:
        s.cleanup()


def fill(path):
    """Writes `path` until the file system has no byte left; returns the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    n = os.write(fd, block)
                except OSError:
                    break
                written += n
                if n < size:
                    break
    finally:
        os.close(fd)
    return written


def test_full_disk(tmpfs_server):
    server = tmpfs_server
    client = server.client()
    acked = {client.create_service(name=unique("disk"), tags=BIG_TAGS)["id"] for _ in range(5)}
    filler = os.path.join(server.mount, "filler")
    assert fill(filler) > 0
    assert os.statvfs(server.mount).f_bavail == 0

    failures = []
    for _ in range(2000):
        try:
            acked.add(client.create_service(name=unique("disk"), tags=BIG_TAGS)["id"])
        except ClientError as e:
            failures.append(e.response)
            if len(failures) == 3:
                break
    assert failures, "2,000 writes of ~20 KB each succeeded on a full 24 MiB disk"
    for r in failures:
        # A 5xx in AWS's error shape, with a request ID: SDKs treat it as retryable server trouble.
        assert r["ResponseMetadata"]["HTTPStatusCode"] >= 500, r
        assert r["Error"]["Code"] == "InternalServerException", r
        assert r["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid"), r
    # Still up, still serving reads: everything acknowledged is listed and readable.
    assert server.proc.poll() is None, server.log()
    assert server.admin("/_trellis/health")[0] == 200
    assert acked <= all_service_ids(client)
    some = next(iter(acked))
    assert client.get_service(serviceIdentifier=some)["id"] == some

    # Space back: writes work again.
    os.remove(filler)
    sid = client.create_service(name=unique("disk"), tags=BIG_TAGS)["id"]
    acked.add(sid)
    assert client.get_service(serviceIdentifier=sid)["id"] == sid

    # And nothing acknowledged was lost, even with an unclean stop.
    server.kill9()
    server.start()
    assert acked <= all_service_ids(server.client())
