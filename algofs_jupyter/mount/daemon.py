"""Running one mount in the foreground: wire the data-access layer, caches, staging, control socket and
mfusepy together, then block until unmounted.

libfuse options: multi-threaded loop, ``fsname=algofs,subtype=algofs`` (shows as ``fuse.algofs``),
``auto_unmount`` (libfuse's helper unmounts if the daemon dies, so a crash leaves no dead mount),
``default_permissions`` when the server keeps modes and owners (posix extension: the kernel checks them),
``ro`` for ``--read-only``.
Kernel attr/entry timeouts equal the metadata TTL (an ``ls -l`` of 10k entries must not outlive them).
As root, the mount's readahead window is raised to ``READ_AHEAD_KB`` so reads arrive as 1 MiB requests.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from pathlib import Path

from ..fs.api_capabilities import READ_MANY
from ..fs.data_api import DataClient
from ..fs.local_reads import LocalOpener
from ..private_dirs import make_private_dirs
from .block_cache import BlockCache
from .content_cache import ContentCache, ManyGet
from .control import ControlServer
from .metadata_cache import MetadataCache
from .mount_table import ALGOFS_FS_TYPE, entry_at, mount_path
from .node_limit import NodeLimit
from .operations import AlgoOperations
from .options import MountOptions
from .pipes import PipeTree
from .recovery import RecoveryStore
from .server_files import ServerFiles
from .staging import WriteStaging, salvage_staging
from .uploads import Uploader

log = logging.getLogger(__name__)
READ_AHEAD_KB = 4096
#: glibc's arenas for the daemon's threads (its default is 8 per core, each keeping its free pages)
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Bound glibc's per-thread arenas before libfuse starts its worker threads: each thread that
    allocates gets an arena of its own and keeps its free pages; at the end of a 1,000,000-file walk they
    held ~46 MiB of the daemon's RSS (issue 26). Python's small objects live in pymalloc's arenas anyway."""
    try:
        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):  # not glibc
        return False


def mount_device(mountpoint: str) -> str | None:
    """``major:minor`` of our mount at ``mountpoint`` (from the mount table: a stat would call into our
    own, not yet serving, filesystem)."""
    entry = entry_at(mountpoint)
    return entry.device if entry is not None and entry.fs_type == ALGOFS_FS_TYPE else None


def raise_readahead(mountpoint: str, kilobytes: int = READ_AHEAD_KB, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        device = mount_device(mountpoint)
        if device:
            try:
                Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text(str(kilobytes))
                log.info("read_ahead_kb of %s set to %d", device, kilobytes)
                return True
            except OSError as exc:
                log.info("can't raise read_ahead_kb (%s); reads stay at the kernel default", exc)
                return False
        time.sleep(0.05)
    return False


class MountDaemon:
    def __init__(self, mountpoint: str, api_address: str | None, api_key: str | None, options: MountOptions):
        self.mountpoint = mountpoint
        self.options = options
        cache_dir = Path(options.cache_dir)
        make_private_dirs(cache_dir)
        self.client = DataClient(api_address, api_key, timeout=options.timeout,
                             extensions=not options.no_extensions)
        self.blocks = BlockCache(cache_dir / "blocks", options.cache_size, options.block_size,
                                 options.readahead_blocks)
        self.metadata = MetadataCache(options.metadata_ttl, options.negative_ttl)
        self.recovery = RecoveryStore(cache_dir, self.client.session.api_address)
        salvage_staging(cache_dir / "staging", self.recovery)  # files a dead daemon never uploaded
        self.staging = WriteStaging(cache_dir / "staging" / str(os.getpid()), self.recovery)
        self.nodes = NodeLimit(options.inode_soft_limit)  # started by the FUSE binding's init
        self.content = ContentCache(self.blocks, self.client.range_reader, self.client.read_whole,
                                    self.metadata.listing, small_file_size=options.small_file_size,
                                    small_files_memory=options.prefetch_memory,
                                    prefetch_files=options.prefetch_files,
                                    kept=self.staging,  # what this mount uploaded is read from its copy
                                    many_of=self._read_many_of, list_directory=self._list_directory,
                                    server_files=None if options.no_local_reads or options.no_extensions
                                    else ServerFiles(LocalOpener(self.client)))
        self.uploader = Uploader(self.client, self.staging, self.metadata, self.content,
                                 write_back=options.write_back)
        self.operations = AlgoOperations(
            self.client, self.content, self.metadata, self.staging, self.uploader,
            algorithms=PipeTree(self.client, timeout=options.algo_timeout),
            extra_connectors=options.connectors, kernel_ttl=options.metadata_ttl,
            negative_ttl=options.negative_ttl, on_init=self._after_mount, consistency=options.consistency,
            read_only=options.read_only)
        self.control = ControlServer(mountpoint, {"status": self.status, "clear_cache": self.clear})
        self.started_at = time.time()
        self.readahead_kb: int | None = None
        #: the post-mount set-up (``_after_mount``) is done; until then ``status`` says "starting"
        self.set_up = False

    def _read_many_of(self, directory: str) -> ManyGet | None:
        """The data client's ``read_many`` where ``directory``'s storage has the extension. Capabilities
        already discovered only (asked right after mounting): the prefetcher asks under its lock."""
        capabilities, parts = self.client.known_capabilities, directory.split("/", 1)
        if capabilities is None or not capabilities.supports(READ_MANY, parts[0]):
            return None
        return self.client.read_many

    def _list_directory(self, directory: str) -> None:
        """List ``directory`` into the metadata cache (the resolver's single-flight listing)."""
        self.operations.resolver.listing(directory)

    def _after_mount(self) -> None:
        """Runs in a thread started while libfuse answers the kernel's INIT. Raising read_ahead_kb has
        to wait until the kernel has processed that answer: processing it clamps the bdi's readahead to
        the INIT's max_readahead (128 KiB), so a value written earlier was silently undone (seen under CPU
        load: random 8-byte reads came as nine 128 KiB requests, enough to look sequential and prefetch
        32 MiB each). A stat of the mountpoint returns only once the connection is initialised."""
        try:
            os.stat(self.mountpoint)
        except OSError as exc:
            log.info("mountpoint not answering after INIT: %s", exc)
        if os.geteuid() == 0 and raise_readahead(self.mountpoint):
            self.readahead_kb = READ_AHEAD_KB
        self.set_up = True
        # Learn who we are now, off the FUSE init thread, so `algofs status` names the user without a
        # network call of its own; a backend that is down leaves it unknown until `.my` is first used.
        threading.Thread(target=self._learn_username, name="algofs-whoami", daemon=True).start()

    def _learn_username(self) -> None:
        try:
            self.operations.resolver.username()
        except Exception as exc:  # best effort, status shows null
            log.info("could not learn the API user yet: %s", exc)
        self.client.capabilities()  # discovered once per mount (asked again while the backend is down)

    def status(self) -> dict:
        uploads = {**self.staging.stats(), **self.uploader.stats()}
        return {
            "state": "mounted" if self.set_up else "starting",
            "mountpoint": mount_path(self.mountpoint),
            "pid": os.getpid(),
            "api_address": self.client.session.api_address,
            "username": self.operations.resolver.known_username,
            "started_at": self.started_at,
            "backend": self.client.session.health(),
            "extensions": sorted(self.client.known_capabilities.extensions) if self.client.known_capabilities
            else None,
            "options": {**self.options.as_status(), "read_ahead_kb": self.readahead_kb},
            "cache": self.content.stats(),  # the block cache's, with the small files' added
            "metadata": self.metadata.stats(),
            "small_files": self.content.small_files_stats(),
            "nodes": self.nodes.stats(),
            "fuse": {"thread_states": self._fuse_thread_states()},
            "uploads": uploads,
            "write_back": self.uploader.write_back.stats() if self.uploader.write_back else None,
            "recovery": {"directory": str(self.recovery.directory),
                         "entries": [e.as_dict() for e in self.recovery.entries()]},
            "open_handles": self.operations.open_handles(),
            "open_directories": self.operations.open_directories,
            "kernel": {"caches_symlinks": self.operations.kernel_caches_symlinks,
                       "readlink_requests": self.operations.readlink_requests},
            "algorithms": self.operations.algorithms.stats(),
        }

    @staticmethod
    def _fuse_thread_states() -> int:
        """Worker threads holding a kept Python thread state (fuse_binding.keep_thread_state)."""
        from . import fuse_binding  # imports mfusepy: after mount/__init__ chose libfuse3

        return fuse_binding.kept_thread_states()

    def clear(self) -> dict:
        self.operations.clear_caches()
        return self.status()

    def run(self) -> int:
        from .fuse_binding import DirectReadFUSE  # imports mfusepy: after mount/__init__ chose libfuse3

        limit_malloc_arenas()
        self.control.start()
        # SIGINT/SIGTERM/SIGHUP stay at SIG_DFL so libfuse installs its own handlers (unmount and return).
        # intr: a reader blocked on an algorithm pipe (stream mode) can be interrupted with Ctrl-C.
        # libfuse then signals the worker thread with SIGUSR1, whose default action would kill us.
        signal.signal(signal.SIGUSR1, _ignore_signal)
        options = {"fsname": "algofs", "subtype": "algofs", "auto_unmount": True, "intr": True}
        if self.options.allow_other:
            options["allow_other"] = True
        if self.options.read_only:
            options["ro"] = True  # the kernel refuses writes (EROFS) and never invalidates atime after a read
        if self.client.capabilities().supports("posix", "data"):
            # the stored modes and owners are the permissions: the kernel checks them (as on a disk)
            options["default_permissions"] = True
        try:
            DirectReadFUSE(self.operations, self.mountpoint, raw_fi=True, foreground=True,
                           nothreads=False, debug=self.options.debug, node_limit=self.nodes, **options)
        except KeyboardInterrupt:
            pass
        finally:
            self.uploader.drain()  # if libfuse did not call destroy (a no-op when it did)
            self.control.stop()
            self.staging.close()
            self.nodes.close()
            self.content.close()  # the directory prefetcher, then the block cache
            self.client.session.close()
        return 0


def _ignore_signal(signum: int, frame: object) -> None:
    """A handler, not SIG_IGN: the interrupted system call must still return EINTR."""
