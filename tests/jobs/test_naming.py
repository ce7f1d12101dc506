"""Output names and placement that never overwrites."""

from __future__ import annotations

import time

from multitalk_desktop.jobs.naming import output_name, place_without_overwrite, prompt_slug


def test_name_is_date_prompt_words_and_id8():
    created = time.mktime((2025, 7, 4, 12, 0, 0, 0, 0, -1))
    assert output_name(created, "Two friends chat, happily, in a café!", "0123456789abcdef") == \
        "2025-07-04_two-friends-chat-happily-in_01234567.mp4"


def test_slug_is_safe_for_every_file_system():
    assert prompt_slug("../../etc/passwd") == "etc-passwd"
    assert prompt_slug("") == "video" and prompt_slug("日本語") == "video"
    assert len(prompt_slug("word " * 100)) <= 40


def test_placement_never_overwrites_and_leaves_no_source(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"first")
    placed = []
    for k in range(3):
        src = tmp_path / f"render{k}.tmp.mp4"
        src.write_bytes(f"video {k}".encode())
        placed.append(place_without_overwrite(src, out, "a.mp4"))
        assert not src.exists()
    assert [p.name for p in placed] == ["a-2.mp4", "a-3.mp4", "a-4.mp4"]
    assert (out / "a.mp4").read_bytes() == b"first"
    assert sorted(p.name for p in out.iterdir()) == ["a-2.mp4", "a-3.mp4", "a-4.mp4", "a.mp4"]


def test_placement_onto_another_disk_copies_then_links(tmp_path):
    import os
    import tempfile

    import pytest

    other = "/dev/shm"
    if not os.path.isdir(other) or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    with tempfile.TemporaryDirectory(dir=other) as folder:
        src = tmp_path / "render.tmp.mp4"
        src.write_bytes(b"video")
        from pathlib import Path

        final = place_without_overwrite(src, Path(folder), "v.mp4")
        assert final.read_bytes() == b"video" and not src.exists()
        assert [p.name for p in Path(folder).iterdir()] == ["v.mp4"]  # no staged leftovers


def test_each_free_name_is_announced_before_it_appears_and_a_refusal_stops_the_placement(tmp_path):
    import pytest

    out = tmp_path / "outputs"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"first")
    src = tmp_path / "render.tmp.mp4"
    src.write_bytes(b"video")
    announced = []

    def announce(candidate):
        assert not candidate.exists()  # told before the link, never after
        announced.append(candidate.name)

    final = place_without_overwrite(src, out, "a.mp4", before_link=announce)
    assert announced == ["a-2.mp4"] and final.name == "a-2.mp4"  # a taken name is not announced

    src.write_bytes(b"video 2")

    def refuse(candidate):
        raise RuntimeError("the job is no longer ours")

    with pytest.raises(RuntimeError):
        place_without_overwrite(src, out, "b.mp4", before_link=refuse)
    assert src.read_bytes() == b"video 2" and not (out / "b.mp4").exists()
