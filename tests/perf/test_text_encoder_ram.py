"""bench/text_encoder_ram.py on a tiny UMT5: it writes a sharded checkpoint in diffusers' layout,
measures both loaders in fresh processes, reports the fp8 loader's smaller weights and a bounded
output difference, and deletes its folder."""

from __future__ import annotations

import json
from pathlib import Path

from tests.perf.bench_scripts import load_bench

TINY_UMT5 = dict(
    vocab_size=128, d_model=64, d_kv=16, d_ff=160, num_layers=2, num_heads=4,
    relative_attention_num_buckets=8, relative_attention_max_distance=32,
    feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True,
    dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
)


text_encoder_ram = load_bench("text_encoder_ram")


def test_checkpoint_has_the_diffusers_layout_with_the_tied_embedding_saved_once(tmp_path):
    folder = tmp_path / "text_encoder"
    size = text_encoder_ram.write_checkpoint(folder, TINY_UMT5, shard_bytes=40_000)
    index = json.loads((folder / "model.safetensors.index.json").read_text("utf-8"))
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((folder / name).is_file() for name in shards)
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert "shared.weight" in index["weight_map"]
    assert "encoder.embed_tokens.weight" not in index["weight_map"]
    assert index["metadata"]["total_size"] == size
    assert (folder / "config.json").is_file()


def test_run_measures_both_loaders_and_removes_its_folder(capsys):
    report = text_encoder_ram.run(TINY_UMT5, prompt_tokens=4, shard_bytes=40_000)
    assert not Path(report["root"]).exists()
    bf16, fp8 = report["bf16 from_pretrained"], report["fp8 loader (low)"]
    for figures in (bf16, fp8):
        assert figures["hwm_gib"] >= figures["before_gib"] > 0
        assert figures["load_s"] > 0 and figures["encode_s"] > 0
    assert fp8["weights_gib"] < bf16["weights_gib"]
    assert 0 < report["fp8_rel_l2"] < 0.2
    text_encoder_ram.print_table(report, TINY_UMT5)
    assert "fp8 loader (low)" in capsys.readouterr().out
