"""`models make-tiny DIR`: a complete models folder in the real layout with tiny random weights.

Every file the real folder has (manifest), written by the same libraries that wrote the real ones,
so tests, `selftest` and benchmarks run the real loading code: diffusers-format Wan folder (sharded
backbone with an index, VAE, UMT5 encoder with a tokenizer trained here, CLIP vision tower giving
257 tokens, image processor), chinese-wav2vec2-base layout, `multitalk.safetensors` with the
official key names plus its small `config.json`, and a LoRA in lightx2v's key format. Nothing is
downloaded. Takes a few seconds.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from multitalk_desktop.engine.manifest import (
    FAST_LORA_FILE,
    LORA_FOLDER,
    MULTITALK_CONFIG,
    MULTITALK_FILE,
    MULTITALK_FOLDER,
    WAN_FOLDER,
    WAV2VEC_FOLDER,
)

# Sizes of the tiny models. Dimensions that must agree across models are tied here.
WAV2VEC_HIDDEN = 16
WAV2VEC_LAYERS = 2
TEXT_DIM = 16  # UMT5 d_model = the backbone's text_dim
CLIP_HIDDEN = 8  # = the backbone's image_dim
HEADS, HEAD_DIM = 2, 12
TINY_BACKBONE = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": HEADS,
    "attention_head_dim": HEAD_DIM,
    "in_channels": 36,
    "out_channels": 16,
    "text_dim": TEXT_DIM,
    "freq_dim": 32,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": CLIP_HIDDEN,
    "added_kv_proj_dim": HEADS * HEAD_DIM,
    "rope_max_seq_len": 1024,
}
# The adapter sizes (MeiGen-MultiTalk/config.json); the real file is absent and defaults apply.
TINY_ADAPTER = {
    "audio_window": 5,
    "vae_scale": 4,
    "intermediate_dim": 16,
    "output_dim": 12,
    "context_tokens": 4,
    "audio_blocks": WAV2VEC_LAYERS,
    "audio_channels": WAV2VEC_HIDDEN,
    "norm_input_visual": True,
    "norm_output_audio": True,
}
LORA_RANK = 4
# Small shards so the tiny backbone has an index and several shards, like the real one.
BACKBONE_SHARD = "60KB"

TOKENIZER_CORPUS = [
    "A man and a woman are talking in a cozy recording studio, medium shot.",
    "A person is speaking to the camera in a softly lit room, natural expressions.",
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, "
    "images, static, overall gray, worst quality, low quality, JPEG compression residue, ugly, "
    "incomplete, extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, "
    "misshapen limbs, fused fingers, still picture, messy background, three legs, many people "
    "in the background, walking backwards",
    "The quick brown fox jumps over the lazy dog 0123456789.",
]


def make_tiny_models(root: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny folder at `root` (created or overwritten file by file). Returns root."""
    import torch

    from multitalk_desktop.engine.model_files import sha256_file, write_verified

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    wan = root / WAN_FOLDER
    write_tokenizer(wan / "tokenizer")
    vocab = len(json.loads((wan / "tokenizer" / "tokenizer.json").read_text("utf-8"))["model"]["vocab"])
    write_text_encoder(wan / "text_encoder", vocab)
    write_image_encoder(wan / "image_encoder", wan / "image_processor")
    write_vae(wan / "vae")
    write_backbone_and_adapter(wan / "transformer", root / MULTITALK_FOLDER)
    write_wav2vec(root / WAV2VEC_FOLDER)
    write_lora(root / LORA_FOLDER / FAST_LORA_FILE)
    write_model_index(wan / "model_index.json")

    # Record every file as verified now, so `models check --deep` can compare hashes later.
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "verified.json":
            st = path.stat()
            rel = path.relative_to(root).as_posix()
            files[rel] = {"sha256": sha256_file(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                          "source": "make-tiny", "verified_at": ""}
    write_verified(root, {"version": 1, "variant": "tiny", "files": files})
    return root


def write_tokenizer(folder: Path) -> None:
    """A UMT5-compatible tokenizer: a tiny sentencepiece unigram model trained here, wrapped as
    transformers' T5Tokenizer (tokenizer.json + spiece.model, as the real folder has)."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_CORPUS * 8), model_writer=proto, vocab_size=96,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        hard_vocab_limit=False, minloglevel=2, num_threads=1,
    )
    (folder / "spiece.model").write_bytes(proto.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)
    tokenizer.save_pretrained(str(folder))
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), "utf-8")


def write_text_encoder(folder: Path, vocab_size: int) -> None:
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=vocab_size, d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )
    # A small shard size gives an index + shards, as the real (22 GB) encoder has.
    UMT5EncoderModel(config).eval().save_pretrained(str(folder), max_shard_size="20KB")


def write_image_encoder(folder: Path, processor_folder: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    # image 224 / patch 14 -> 16x16 patches + class token = 257 tokens, like ViT-H/14.
    config = CLIPVisionConfig(
        hidden_size=CLIP_HIDDEN, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        image_size=224, patch_size=14, projection_dim=CLIP_HIDDEN,
    )
    CLIPVisionModel(config).eval().save_pretrained(str(folder))
    CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    ).save_pretrained(str(processor_folder))


def write_vae(folder: Path) -> None:
    from diffusers import AutoencoderKLWan

    # diffusers' own test configuration (13,861 parameters); latents_mean/std keep Wan2.1's values.
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    vae.save_pretrained(str(folder))


def is_audio_key(key: str) -> bool:
    return key.startswith("audio_proj.") or ".audio_cross_attn." in key or ".norm_x." in key


def write_backbone_and_adapter(backbone_folder: Path, adapter_folder: Path) -> None:
    """Build the full MultiTalk model once, then split it: backbone keys in diffusers format
    (a plain WanTransformer3DModel folder, as the real repository has), audio keys with their
    official names in multitalk.safetensors."""
    import torch
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel

    full = MultiTalkTransformer3DModel(**TINY_BACKBONE, **TINY_ADAPTER)
    # Default init leaves the zero-initialised output head and scale tables at zero, which would
    # make every prediction the same; give all parameters some random spread instead.
    with torch.no_grad():
        for name, param in full.named_parameters():
            if param.ndim >= 2:
                param.copy_(torch.randn_like(param) / param.shape[-1] ** 0.5)
            elif "norm" in name and "weight" in name:
                param.copy_(1 + 0.1 * torch.randn_like(param))
            else:
                param.copy_(0.05 * torch.randn_like(param))
    state = full.state_dict()
    backbone = WanTransformer3DModel(**TINY_BACKBONE)
    backbone.load_state_dict({k: v for k, v in state.items() if not is_audio_key(k)}, strict=True)
    backbone.save_pretrained(str(backbone_folder), max_shard_size=BACKBONE_SHARD)
    adapter_folder.mkdir(parents=True, exist_ok=True)
    audio = {k: v.contiguous() for k, v in state.items() if is_audio_key(k)}
    save_file(audio, str(adapter_folder / MULTITALK_FILE))
    (adapter_folder / MULTITALK_CONFIG).write_text(json.dumps(TINY_ADAPTER, indent=2), "utf-8")


def write_wav2vec(folder: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from multitalk_desktop.engine.wav2vec import DEFAULT_FEATURE_EXTRACTOR

    # chinese-wav2vec2-base's layout (7 conv layers with the real kernels and strides, group norm,
    # post-LN encoder) at tiny widths.
    config = Wav2Vec2Config(
        hidden_size=WAV2VEC_HIDDEN, num_hidden_layers=WAV2VEC_LAYERS, num_attention_heads=2,
        intermediate_size=32, conv_dim=(8,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, feat_extract_norm="group", do_stable_layer_norm=False,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        layerdrop=0.0, mask_time_prob=0.0,
    )
    Wav2Vec2Model(config).eval().save_pretrained(str(folder))
    Wav2Vec2FeatureExtractor(**DEFAULT_FEATURE_EXTRACTOR).save_pretrained(str(folder))


def lora_targets() -> dict[str, str]:
    """Official parameter name -> diffusers name of each weight the tiny LoRA touches."""
    from multitalk_desktop.engine.weights import convert_official_backbone_keys

    official = []
    for block in range(TINY_BACKBONE["num_layers"]):
        for module in ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                       "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o",
                       "ffn.0", "ffn.2"):
            official.append(f"blocks.{block}.{module}")
    converted = convert_official_backbone_keys({name + ".weight": None for name in official})
    return {name: diff[: -len(".weight")] for name, diff in zip(official, converted, strict=True)}


def write_lora(path: Path) -> None:
    """lightx2v's format: `diffusion_model.<official module>.lora_down.weight` [r, in],
    `.lora_up.weight` [out, r], `.alpha`; plus `.diff_b` (bias delta) and `.diff` (full delta)
    entries as Kijai's extracted LoRAs carry for some modules."""
    import torch
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    shapes = {k: v.shape for k, v in WanTransformer3DModel(**TINY_BACKBONE).state_dict().items()}
    tensors = {}
    for official, diffusers_name in lora_targets().items():
        out_dim, in_dim = shapes[diffusers_name + ".weight"]
        key = f"diffusion_model.{official}"
        tensors[f"{key}.lora_down.weight"] = torch.randn(LORA_RANK, in_dim) / in_dim**0.5
        tensors[f"{key}.lora_up.weight"] = torch.randn(out_dim, LORA_RANK) / LORA_RANK**0.5
        tensors[f"{key}.alpha"] = torch.tensor(float(LORA_RANK))
        if official.endswith("self_attn.o"):
            tensors[f"{key}.diff_b"] = 0.05 * torch.randn(out_dim)
    for block in range(TINY_BACKBONE["num_layers"]):
        dim = HEADS * HEAD_DIM
        tensors[f"diffusion_model.blocks.{block}.norm3.diff"] = 0.05 * torch.randn(dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))


def write_model_index(path: Path) -> None:
    index = {
        "_class_name": "WanImageToVideoPipeline",
        "_diffusers_version": "0.42.1",
        "image_encoder": ["transformers", "CLIPVisionModel"],
        "image_processor": ["transformers", "CLIPImageProcessor"],
        "scheduler": [None, None],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    path.write_text(json.dumps(index, indent=2), "utf-8")
