"""Every RocksDB store of a worker shares one cache and one memtable budget (services/runtime/fixes/store_memory.py)."""

from __future__ import annotations

from pathlib import Path

from faust.stores.rocksdb import RocksDBOptions

from services.runtime.app import create_app
from services.runtime.context import Context
from services.runtime.fixes.store_memory import StoreMemory
from services.runtime.fixes.tables import FencedTable
from services.runtime.settings import Settings

MB = 1 << 20


def _fill(db: object, keys: int, value: bytes) -> None:
    for k in range(keys):
        db[f"key-{k:08d}".encode()] = value  # type: ignore[index]


def test_stores_share_one_bounded_cache(tmp_path: Path) -> None:
    memory = StoreMemory(cache_mb=2, memtables_mb=1)
    faust_options = RocksDBOptions(write_buffer_size=MB, max_write_buffer_number=2, block_cache_size=64 * MB, use_rocksdict=True)
    dbs = [memory.options(faust_options).open(tmp_path / f"partition-{i}") for i in range(4)]
    try:
        for i, db in enumerate(dbs):
            keys = 10_000 * (i + 1)  # 1 to 4 MB a store, 10 MB in all: memtables flushed on the way
            _fill(db, keys, b"x" * 100)
            for k in range(0, keys, 13):
                assert db[f"key-{k:08d}".encode()] == b"x" * 100
        usages = {db.property_int_value("rocksdb.block-cache-usage") for db in dbs}
        assert len(usages) == 1, "one cache, seen alike from every store"
        assert memory.usage_bytes() <= 3 * MB, "four stores, each asked for 64 MB of cache, hold about the shared 2 MB"
        assert memory.usage_bytes() > MB // 2, "the memtables and the blocks read are charged to it"
    finally:
        for db in dbs:
            db.close()


def test_the_worker_opens_its_tables_with_its_budget(tmp_path: Path) -> None:
    settings = Settings(broker="kafka://127.0.0.1:9", data_dir=tmp_path, web_port=0,
                        rocksdb_block_cache_mb=5, rocksdb_memtables_mb=3)
    app = create_app(Context.load(settings), ["ingest", "correlate"])
    memory = app.store_memory  # type: ignore[attr-defined]
    assert isinstance(memory, StoreMemory)
    assert memory.write_buffers.get_buffer_size() == 3 * MB
    tables = [t for t in app.tables.values() if isinstance(t, FencedTable)]
    assert {t.name for t in tables} == {"progress", "dedup", "correlation"}
    for table in tables:
        options = table.data.rocksdb_options  # type: ignore[attr-defined]
        assert options.memory is memory
        assert options.write_buffer_size == settings.rocksdb_write_buffer_mb * MB
