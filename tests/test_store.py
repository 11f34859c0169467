"""The durable sample store: keys, round trips, no overwrites, crash safety, corruption detection, speed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from capcal.errors import RunDirError
from capcal.models.base import Completion, SamplingParams
from capcal.store import SampleStore, StoreCorruptError, canonical_json, sample_key, sample_keys

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Perú?"}]


def test_sample_key_matches_an_independent_sha256_of_canonical_json():
    params = SamplingParams(temperature=0.7, max_tokens=64).to_dict()
    expected_text = json.dumps(
        {"v": 1, "backend": "openai", "model": "stub", "messages": MESSAGES, "params": params, "index": 3},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(expected_text.encode("utf-8")).hexdigest()
    assert sample_key("openai", "stub", MESSAGES, params, 3) == expected
    # a dataclass gives the same key as its dict form; key order of dicts does not matter
    assert sample_key("openai", "stub", MESSAGES, SamplingParams(temperature=0.7, max_tokens=64), 3) == expected
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert sample_key("openai", "stub", reordered, dict(reversed(list(params.items()))), 3) == expected


def test_sample_key_changes_with_every_component():
    base = dict(backend="openai", model="stub", messages=MESSAGES, params={"temperature": 1.0, "seed": 0}, index=0)
    key = sample_key(**base)
    variants = [
        {**base, "backend": "embedded"},
        {**base, "model": "stub2"},
        {**base, "messages": [MESSAGES[0], {"role": "user", "content": "Capital of Peru?"}]},
        {**base, "params": {"temperature": 0.9, "seed": 0}},
        {**base, "params": {"temperature": 1.0, "seed": 1}},
        {**base, "index": 1},
    ]
    keys = {sample_key(**v) for v in variants}
    assert key not in keys and len(keys) == len(variants)
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_sample_key_rejects_bad_indices(bad):
    with pytest.raises(ValueError):
        sample_key("openai", "stub", MESSAGES, {}, bad)


def test_sample_keys_of_one_prompt_equal_the_one_by_one_keys():
    params = {**SamplingParams(temperature=0.7, stop=("\n\n",)).to_dict(), "seed": 5}
    tricky = [{"role": "user", "content": 'a ,"index":0, b "quoted" \u00e9 \n'}]
    for messages in (MESSAGES, tricky):
        for j, key in zip(range(12), sample_keys("openai", "stub", messages, params, range(12)), strict=True):
            text = json.dumps({"v": 1, "backend": "openai", "model": "stub", "messages": messages, "params": params,
                               "index": j}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert key == hashlib.sha256(text.encode("utf-8")).hexdigest() == sample_key("openai", "stub", messages,
                                                                                           params, j)
    assert sample_keys("openai", "stub", MESSAGES, params, []) == []
    with pytest.raises(ValueError):
        sample_keys("openai", "stub", MESSAGES, params, [0, -1])


def test_canonical_json_of_numpy_values_dataclasses_and_tuples():
    import numpy as np

    obj = {"b": (1, np.int64(2), np.float64(0.25), np.bool_(True)), "a": SamplingParams(max_tokens=8), 3: "int key"}
    expected = json.dumps({"3": "int key", "a": SamplingParams(max_tokens=8).to_dict(), "b": [1, 2, 0.25, True]},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(obj) == expected
    assert canonical_json({1: "x", "a": 2}) == '{"1":"x","a":2}'  # mixed key types: converted, then sorted


def test_canonical_json_rejects_nan():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_round_trip_has_many_and_no_overwrite(tmp_path):
    path = tmp_path / "run" / "samples.sqlite"
    comps = {f"k{i}": Completion(text=f"answer {i}", finish_reason="stop", seed=i,
                                 tokens=["a"], token_logprobs=[-0.25], top_logprobs=[{"a": -0.25, "b": -1.5}])
             for i in range(5)}
    with SampleStore(path) as store:
        assert store.put_many([(k, c.to_dict(), {"q": "x", "index": i}) for i, (k, c) in enumerate(comps.items())]) == 5
        # the first answer drawn is the answer: a second put of the same key does not overwrite it
        assert store.put_many([("k0", Completion(text="other").to_dict())]) == 0
        assert store.has_many(["k0", "k4", "nope"]) == {"k0", "k4"}
        assert len(store) == 5
    with SampleStore(path) as store:  # reopened from disk
        got = store.get_many(["k0", "k1", "missing", "k4"])
        assert set(got) == {"k0", "k1", "k4"}
        for k in got:
            assert Completion.from_dict(got[k]) == comps[k]
        rec = store.get_records(["k2"])["k2"]
        assert rec["info"] == {"q": "x", "index": 2} and abs(rec["stored_at"] - time.time()) < 60
        assert store.keys() == sorted(comps)


def test_many_keys_beyond_one_statement(tmp_path):
    with SampleStore(tmp_path / "s.sqlite") as store:
        keys = [sample_key("b", "m", MESSAGES, {}, i) for i in range(2345)]
        store.put_many([(k, {"text": str(i)}) for i, k in enumerate(keys)])
        got = store.get_many(keys[::-1])
        assert len(got) == 2345 and got[keys[1234]] == {"text": "1234"}
        assert store.has_many(keys + ["x"]) == set(keys)


def test_wal_mode_and_full_sync(tmp_path):
    path = tmp_path / "s.sqlite"
    with SampleStore(path) as store:
        store.put_many([("a", {"text": "x"})])
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_checksum_mismatch_is_reported_not_returned(tmp_path):
    path = tmp_path / "s.sqlite"
    with SampleStore(path) as store:
        store.put_many([("good", {"text": "fine"}), ("bad", {"text": "fine too"})])
    raw = sqlite3.connect(path)
    raw.execute("UPDATE samples SET payload = ? WHERE key = 'bad'", ('{"text":"tampered"}',))
    raw.commit()
    raw.close()
    with SampleStore(path) as store:
        assert store.get_many(["good"]) == {"good": {"text": "fine"}}
        with pytest.raises(StoreCorruptError, match="checksum"):
            store.get_many(["bad"])


def test_not_a_store_and_unwritable_folder(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all, " * 100)
    with pytest.raises(StoreCorruptError, match="not a capcal sample store"):
        SampleStore(junk)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError):
        SampleStore(blocker / "sub" / "s.sqlite")


_WRITER = textwrap.dedent("""
    import sys
    from capcal.store import SampleStore
    store = SampleStore(sys.argv[1])
    batch = int(sys.argv[2])
    i = 0
    while True:
        store.put_many([(f"{i}-{j}", {"text": "x" * 3000, "batch": i, "j": j}) for j in range(batch)])
        if i == 5:
            print("ready", flush=True)
        i += 1
""")


def test_sigkill_mid_write_loses_at_most_the_open_batch(tmp_path):
    """A writer killed with SIGKILL at a random moment leaves only complete batches behind."""
    path = tmp_path / "s.sqlite"
    batch = 7
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(batch)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "s.sqlite-wal").exists()  # nothing was checkpointed cleanly on the way out
    with SampleStore(path) as store:
        keys = store.keys()
        assert len(keys) >= 6 * batch and len(keys) % batch == 0
        rows = store.get_many(keys)
        batches = {}
        for row in rows.values():
            assert row["text"] == "x" * 3000
            batches.setdefault(row["batch"], set()).add(row["j"])
        assert sorted(batches) == list(range(len(batches)))  # batches are committed in order, no gaps
        assert all(js == set(range(batch)) for js in batches.values())


def test_torn_wal_tail_is_dropped_not_half_read(tmp_path):
    """Cut the write-ahead log in the middle of the last transaction: that batch vanishes, earlier ones stay."""
    path = tmp_path / "s.sqlite"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        from capcal.store import SampleStore
        store = SampleStore(sys.argv[1])
        store.put_many([(f"a{j}", {"text": "first " * 200}) for j in range(3)])
        print(os.path.getsize(sys.argv[1] + "-wal"), flush=True)
        store.put_many([(f"b{j}", {"text": "second " * 200}) for j in range(3)])
        os.kill(os.getpid(), 9)
    """), str(path)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    first_size = int(proc.stdout.strip())
    wal = tmp_path / "s.sqlite-wal"
    full = wal.stat().st_size
    assert full > first_size
    with open(wal, "r+b") as fh:  # a torn write: the last transaction's frames only partly on disk
        fh.truncate(first_size + (full - first_size) // 2)
    with SampleStore(path) as store:
        assert set(store.keys()) == {"a0", "a1", "a2"}
        assert all(v == {"text": "first " * 200} for v in store.get_many(store.keys()).values())


def test_batched_writes_are_fast(tmp_path):
    """2,000 durable batches of 8 (the sampler benchmark's shape) in well under the time of the sampling."""
    comp = Completion(text="The answer is 42. " * 10, finish_reason="stop").to_dict()
    with SampleStore(tmp_path / "s.sqlite") as store:
        t0 = time.perf_counter()
        for q in range(2000):
            store.put_many([(sample_key("openai", "stub", [{"role": "user", "content": f"q{q}"}], {}, j), comp)
                            for j in range(8)])
        elapsed = time.perf_counter() - t0
        assert len(store) == 16000
        t0 = time.perf_counter()
        assert len(store.get_many(store.keys())) == 16000
        read = time.perf_counter() - t0
    assert elapsed < 15.0, f"16,000 samples in 2,000 commits took {elapsed:.1f} s"
    assert read < 5.0


def test_grammar_enters_the_key_only_when_set():
    # the key of unconstrained sampling is the one written before SamplingParams had a grammar field
    legacy = {"temperature": 0.7, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "max_tokens": 64, "logprobs": False,
              "top_logprobs": 0, "stop": []}
    free = SamplingParams(temperature=0.7, max_tokens=64)
    assert free.to_dict() == legacy
    assert sample_key("llamacpp", "m", MESSAGES, free, 0) == sample_key("llamacpp", "m", MESSAGES, legacy, 0)
    forced = SamplingParams(temperature=0.7, max_tokens=64, grammar='root ::= [A-D]')
    assert forced.to_dict() == {**legacy, "grammar": 'root ::= [A-D]'}
    assert SamplingParams(**{**forced.to_dict(), "stop": ()}) == forced  # the dict form round-trips
    keys = {sample_key("llamacpp", "m", MESSAGES, p, 0) for p in
            (free, forced, SamplingParams(temperature=0.7, max_tokens=64, grammar='root ::= [0-9]+'))}
    assert len(keys) == 3
