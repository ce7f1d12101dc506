"""MultiTalk's DiT on diffusers' Wan backbone.

`MultiTalkTransformer3DModel` is a `WanTransformer3DModel` whose blocks add, between the text/image
cross-attention and the FFN, `x += audio_cross_attn(norm_x(x))` (no gate), plus a top-level
`audio_proj`. Backbone parameters keep diffusers' names; audio parameters keep the official names so
`multitalk.safetensors` loads verbatim. For two speakers each block also turns its self-attention's
post-RoPE q/k into a reference-attention map that drives L-RoPE; for one speaker that work is skipped.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanAttention,
    WanTransformer3DModel,
    WanTransformerBlock,
)

from multitalk_desktop.engine.audio_attention import AudioCrossAttention
from multitalk_desktop.engine.audio_proj import (
    AudioProjModel,
    check_frame_count,
    split_audio_windows,
)
from multitalk_desktop.engine.lean_ops import (
    complex_rope_table,
    gated_add,
    heads_rms_norm,
    lean_enabled,
    modulated_layer_norm,
    rotate_pairs,
    row_chunks,
)
from multitalk_desktop.engine.lrope import speaker_key_positions, speaker_query_positions
from multitalk_desktop.errors import MultiTalkError

# Rows of queries handled at once by the reference-attention map (bounds its memory at real sizes).
_REF_MAP_QUERY_CHUNK = 4096


def token_ref_masks(masks: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Latent-resolution masks [3, H, W] -> token masks [3, N_h*N_w] (float32, 0/1): PyTorch
    `nearest` resize to the patch grid, then > 0, as the official forward does."""
    resized = F.interpolate(masks[None].float(), size=tuple(grid_hw), mode="nearest")[0]
    return (resized > 0).flatten(1).float()


def check_person_masks(token_masks: torch.Tensor, speakers: int) -> None:
    """An empty person region makes the official map divide by zero and the whole video black; say
    which person's box is too small instead."""
    areas = token_masks.sum(dim=-1)
    for person in range(speakers):
        if areas[person] <= 0:
            raise MultiTalkError(
                f"Person {person + 1}'s region is empty at the model's resolution, so the voice "
                "cannot be bound to anyone.",
                "Draw a larger box for that person, inside the part of the image that is kept "
                "after cropping, or leave the boxes out to use the left/right halves.",
            )


def reference_attention_map(
    query: torch.Tensor,
    key: torch.Tensor,
    tokens_per_frame: int,
    token_masks: torch.Tensor,
    split_num: int = 2,
) -> torch.Tensor:
    """The reference-attention map the engine uses: the numbers of
    `reference_attention_map_explicit`, computed as one fused attention whose values are the masks
    (engine/ref_map.py). It never stores the [heads, tokens, frame-0 tokens] probabilities: on an
    H200 at 480p it took 1.9 ms per block instead of 23.6 ms (bench/logs). In fp32 it equals the
    explicit form to rounding (the conformance fixtures run through it)."""
    from multitalk_desktop.engine.ref_map import reference_attention_map_fused

    return reference_attention_map_fused(query, key, tokens_per_frame, token_masks, split_num)


def reference_attention_map_explicit(
    query: torch.Tensor,
    key: torch.Tensor,
    tokens_per_frame: int,
    token_masks: torch.Tensor,
    split_num: int = 2,
) -> torch.Tensor:
    """How much every video token attends to each mask region of latent frame 0.

    query/key [B, L, H, D] after RoPE; token_masks [C, tokens_per_frame]. For each class: the
    softmax over frame-0 keys summed inside the mask and divided by its area, averaged over heads in
    `split_num` chunks of H // split_num heads (with an odd H the last head is left out, as in the
    official code). Returns [B, C, L] float32. An empty class gives zeros (the official code gives
    NaN there)."""
    batch, length, heads, head_dim = query.shape
    split_num = max(1, min(split_num, heads))
    chunk = heads // split_num
    masks = token_masks.to(device=query.device, dtype=torch.float32)
    areas = masks.sum(dim=-1)
    inv_area = torch.where(areas > 0, 1.0 / areas.clamp(min=1.0), torch.zeros_like(areas))
    scale = 1.0 / math.sqrt(head_dim)
    ref_key = key[:, :tokens_per_frame].float().transpose(1, 2)  # [B, H, S, D]
    queries = query.float().transpose(1, 2)  # [B, H, L, D]
    total = torch.zeros(batch, masks.shape[0], length, dtype=torch.float32, device=query.device)
    for part in range(split_num):
        heads_slice = slice(part * chunk, (part + 1) * chunk)
        keys_t = ref_key[:, heads_slice].transpose(-1, -2)
        for start in range(0, length, _REF_MAP_QUERY_CHUNK):
            rows = slice(start, start + _REF_MAP_QUERY_CHUNK)
            probs = ((queries[:, heads_slice, rows] * scale) @ keys_t).softmax(dim=-1)
            per_class = (probs @ masks.T) * inv_area  # [B, h, r, C]
            total[:, :, rows] += per_class.mean(dim=1).transpose(1, 2)
    return total / split_num


def _apply_wan_rope(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    # diffusers' interleaved 3-D RoPE, the same arithmetic as WanAttnProcessor.
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class MultiTalkAttnProcessor:
    """WanAttnProcessor with two changes: the image/text split of the I2V context follows the
    configured text length (diffusers hard-codes 512), and self-attention can also return the
    reference-attention map from its post-RoPE q and k (pass `ref_target_masks` and `grid`)."""

    _attention_backend = None
    _parallel_config = None

    def __init__(self, text_len: int = 512) -> None:
        self.text_len = text_len

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        ref_target_masks: torch.Tensor | None = None,
        grid: tuple[int, int, int] | None = None,
        ref_map_split: int = 2,
    ):
        image_context = None
        if attn.add_k_proj is not None and encoder_hidden_states is not None:
            image_len = encoder_hidden_states.shape[1] - self.text_len
            image_context = encoder_hidden_states[:, :image_len]
            encoder_hidden_states = encoder_hidden_states[:, image_len:]

        source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if getattr(attn, "fused_projections", False) and encoder_hidden_states is None:
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        elif getattr(attn, "fused_projections", False):
            query = attn.to_q(hidden_states)
            key, value = attn.to_kv(source).chunk(2, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(source), attn.to_v(source)

        lean = lean_enabled()
        if lean:
            query = heads_rms_norm(attn.norm_q, query).unflatten(2, (attn.heads, -1))
            key = heads_rms_norm(attn.norm_k, key).unflatten(2, (attn.heads, -1))
        else:
            query = attn.norm_q(query).unflatten(2, (attn.heads, -1))
            key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))
        if lean and isinstance(rotary_emb, tuple):
            rotary_emb = complex_rope_table(*rotary_emb)
        if isinstance(rotary_emb, torch.Tensor):  # the complex table (built once per model forward)
            query = rotate_pairs(query, rotary_emb, out=query if lean else None)
            key = rotate_pairs(key, rotary_emb, out=key if lean else None)
        elif rotary_emb is not None:
            query = _apply_wan_rope(query, *rotary_emb)
            key = _apply_wan_rope(key, *rotary_emb)

        image_out = None
        if image_context is not None:
            if getattr(attn, "fused_projections", False):
                key_img, value_img = attn.to_added_kv(image_context).chunk(2, dim=-1)
            else:
                key_img, value_img = attn.add_k_proj(image_context), attn.add_v_proj(image_context)
            key_img = attn.norm_added_k(key_img).unflatten(2, (attn.heads, -1))
            value_img = value_img.unflatten(2, (attn.heads, -1))
            image_out = dispatch_attention_fn(
                query, key_img, value_img, attn_mask=None, dropout_p=0.0, is_causal=False,
                backend=self._attention_backend,
            )
            image_out = image_out.flatten(2, 3).type_as(query)

        out = dispatch_attention_fn(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
            backend=self._attention_backend,
        )
        out = out.flatten(2, 3).type_as(query)
        if image_out is not None:
            out = out + image_out
        out = attn.to_out[1](attn.to_out[0](out))

        if ref_target_masks is None:
            return out
        with torch.no_grad():
            ref_map = reference_attention_map(query, key, grid[1] * grid[2], ref_target_masks, ref_map_split)
        return out, ref_map


class MultiTalkTransformerBlock(WanTransformerBlock):
    """Wan block + `norm_x` / `audio_cross_attn` between the cross-attention and the FFN."""

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str | None = "rms_norm_across_heads",
        cross_attn_norm: bool = False,
        eps: float = 1e-6,
        added_kv_proj_dim: int | None = None,
        audio_dim: int = 768,
        text_len: int = 512,
        norm_input_visual: bool = True,
        class_range: int = 24,
        class_interval: int = 4,
        ref_map_split: int = 2,
    ) -> None:
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim)
        self.attn1.set_processor(MultiTalkAttnProcessor(text_len))
        self.attn2.set_processor(MultiTalkAttnProcessor(text_len))
        self.audio_cross_attn = AudioCrossAttention(dim, audio_dim, num_heads)
        self.norm_x = FP32LayerNorm(dim, eps, elementwise_affine=True) if norm_input_visual else nn.Identity()
        self.class_range = class_range
        self.class_interval = class_interval
        self.ref_map_split = ref_map_split
        # Tokens per FFN call on the lean path (None: lean_ops.TOKEN_CHUNK). Memory, not arithmetic:
        # at 480p 8192 tokens keep the 13824-wide intermediate at 226 MB instead of 905 MB.
        self.ffn_chunk_tokens: int | None = None

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        audio_context: torch.Tensor | None = None,
        grid: tuple[int, int, int] | None = None,
        token_masks: torch.Tensor | None = None,
        speakers: int = 1,
        intermediates: dict | None = None,
    ) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)
        lean = lean_enabled()

        # 1. Self-attention (and, for two speakers, the reference-attention map)
        if lean:
            norm_hidden = modulated_layer_norm(self.norm1, hidden_states, scale_msa, shift_msa)
        else:
            norm_hidden = (self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa).type_as(hidden_states)
        ref_map = None
        if speakers == 2:
            attn_output, ref_map = self.attn1(
                norm_hidden, None, None, rotary_emb,
                ref_target_masks=token_masks, grid=grid, ref_map_split=self.ref_map_split,
            )
        else:
            attn_output = self.attn1(norm_hidden, None, None, rotary_emb)
        del norm_hidden
        if lean:
            # A new tensor: the block's input is never written (cache hooks compare it with the
            # output); the later residual adds then go in place into this block-owned tensor.
            hidden_states = gated_add(hidden_states, attn_output, gate_msa)
        else:
            hidden_states = (hidden_states.float() + attn_output * gate_msa).type_as(hidden_states)
        del attn_output

        # 2. Cross-attention to text and CLIP image tokens
        norm_hidden = self._norm(self.norm2, hidden_states, lean)
        cross_output = self.attn2(norm_hidden, encoder_hidden_states, None, None)
        del norm_hidden
        if lean:
            hidden_states += cross_output
        else:
            hidden_states = hidden_states + cross_output
        del cross_output

        # 3. Audio cross-attention, per latent frame; L-RoPE binds voices to people
        audio_output = None
        if audio_context is not None:
            query_pos = key_pos = None
            if ref_map is not None:
                query_pos = speaker_query_positions(ref_map, self.class_range, self.class_interval)
                key_pos = speaker_key_positions(audio_context.shape[2], self.class_range, self.class_interval)
            audio_output = self.audio_cross_attn(
                self._norm(self.norm_x, hidden_states, lean), audio_context, query_pos, key_pos
            )
            if lean:
                hidden_states += audio_output
            else:
                hidden_states = hidden_states + audio_output

        # 4. Feed-forward; the lean path runs it over token chunks, so its 13824-wide intermediate
        # exists for one chunk at a time, and adds each chunk's gated output in place.
        if lean:
            for rows in row_chunks(hidden_states.shape[1], self.ffn_chunk_tokens):
                part = hidden_states[:, rows]
                ff_output = self.ffn(modulated_layer_norm(self.norm3, part, c_scale_msa, c_shift_msa))
                gated_add(part, ff_output, c_gate_msa, out=part)
                del ff_output
        else:
            norm_hidden = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(hidden_states)
            ff_output = self.ffn(norm_hidden)
            hidden_states = (hidden_states.float() + ff_output.float() * c_gate_msa).type_as(hidden_states)

        if intermediates is not None:
            intermediates["blocks"].append(
                {"x_ref_attn_map": ref_map, "audio_cross_attn_output": audio_output, "output": hidden_states}
            )
        return hidden_states

    @staticmethod
    def _norm(norm: nn.Module, hidden_states: torch.Tensor, lean: bool) -> torch.Tensor:
        """`norm(x.float()).type_as(x)` (FP32LayerNorm or Identity), one kernel on the lean path."""
        if isinstance(norm, nn.LayerNorm):
            if lean:
                return modulated_layer_norm(norm, hidden_states)
            return norm(hidden_states.float()).type_as(hidden_states)
        return norm(hidden_states)


def timestep_sinusoid(timestep: torch.Tensor, dim: int) -> torch.Tensor:
    """[cos | sin] sinusoidal embedding computed in float64 as the official model does (a float32
    version moves outputs by up to ~2e-5 near t=1000)."""
    half = dim // 2
    position = timestep.reshape(-1).to(torch.float64)
    exponents = -torch.arange(half, dtype=torch.float64, device=position.device) / half
    sinusoid = torch.outer(position, torch.pow(10000.0, exponents))
    return torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1)


class MultiTalkTransformer3DModel(WanTransformer3DModel):
    """diffusers Wan2.1-I2V backbone + MultiTalk audio conditioning. All sizes live in the config;
    the audio defaults are the official ones (window 5, vae_scale 4, intermediate 512, output 768,
    32 context tokens, 12 wav2vec layers of 768 channels)."""

    _no_split_modules = ["MultiTalkTransformerBlock"]
    _repeated_blocks = ["MultiTalkTransformerBlock"]
    _keep_in_fp32_modules = WanTransformer3DModel._keep_in_fp32_modules + ["norm_x"]
    _skip_layerwise_casting_patterns = WanTransformer3DModel._skip_layerwise_casting_patterns + ["audio_proj"]
    # The audio path is not covered by diffusers' context-parallel plan.
    _cp_plan = None

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        in_channels: int = 36,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = 1280,
        added_kv_proj_dim: int | None = 5120,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        text_len: int = 512,
        audio_window: int = 5,
        vae_scale: int = 4,
        intermediate_dim: int = 512,
        output_dim: int = 768,
        context_tokens: int = 32,
        audio_blocks: int = 12,
        audio_channels: int = 768,
        norm_input_visual: bool = True,
        norm_output_audio: bool = True,
        class_range: int = 24,
        class_interval: int = 4,
        ref_map_split: int = 2,
    ) -> None:
        # The parent builds embeddings, RoPE and the output head; its blocks are built here instead
        # (num_layers=0 there avoids allocating a second set of 40 blocks).
        super().__init__(
            patch_size=patch_size, num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim, in_channels=in_channels, out_channels=out_channels,
            text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim, num_layers=0,
            cross_attn_norm=cross_attn_norm, qk_norm=qk_norm, eps=eps, image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim, rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        # diffusers registers the config before running __init__, so the parent's registration
        # just recorded num_layers=0: put the real value back.
        self.register_to_config(num_layers=num_layers)
        inner_dim = num_attention_heads * attention_head_dim
        self.blocks = nn.ModuleList(
            [
                MultiTalkTransformerBlock(
                    inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps,
                    added_kv_proj_dim, audio_dim=output_dim, text_len=text_len,
                    norm_input_visual=norm_input_visual, class_range=class_range,
                    class_interval=class_interval, ref_map_split=ref_map_split,
                )
                for _ in range(num_layers)
            ]
        )
        self.audio_proj = AudioProjModel(
            seq_len=audio_window,
            seq_len_vf=audio_window + vae_scale - 1,
            blocks=audio_blocks,
            channels=audio_channels,
            intermediate_dim=intermediate_dim,
            output_dim=output_dim,
            context_tokens=context_tokens,
            norm_output_audio=norm_output_audio,
        )

    def project_audio(self, audio: torch.Tensor, intermediates: dict | None = None) -> torch.Tensor:
        """Windowed wav2vec features [speakers, frames, window, layers, channels] -> the audio
        context [1, latent_frames, speakers*context_tokens, output_dim] (speakers concatenated on the
        token axis, voice 1 first). Depends only on the clip's audio: compute once per clip."""
        cfg = self.config
        param = self.audio_proj.proj1.weight
        first, latter = split_audio_windows(audio.to(device=param.device, dtype=param.dtype), cfg.audio_window, cfg.vae_scale)
        tokens = self.audio_proj(first, latter)
        context = torch.cat(tokens.split(1), dim=2)
        if intermediates is not None:
            intermediates.update(
                audio_proj_input_first=first, audio_proj_input_latter=latter,
                audio_tokens=tokens, audio_context=context,
            )
        return context

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_context: torch.Tensor | None = None,
        ref_target_masks: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict | None = None,
        intermediates: dict | None = None,
    ):
        """hidden_states [B, in_channels, T, H, W]: the noisy latent and the I2V condition y
        concatenated on channels; timestep [B] float (0..1000, fractions allowed);
        encoder_hidden_states [B, <=text_len, text_dim] (zero-padded to text_len here, as official);
        encoder_hidden_states_image [B, 257, image_dim] CLIP penultimate tokens; either `audio`
        [speakers, 4n+1, window, layers, channels] or `audio_context` from `project_audio`;
        ref_target_masks [3, H, W] latent-resolution person/person/background masks (used only
        with two speakers). `intermediates`, if a dict, receives the internal tensors the
        conformance check compares. Returns float32 [B, out_channels, T, H, W]."""
        cfg = self.config
        batch, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = cfg.patch_size
        grid = (frames // p_t, height // p_h, width // p_w)

        if audio_context is None:
            if audio is None:
                raise MultiTalkError("The MultiTalk model needs audio embeddings or an audio context.")
            audio_context = self.project_audio(audio, intermediates)
        if audio_context.shape[1] != grid[0]:
            check_frame_count(audio_context.shape[1] * cfg.vae_scale - cfg.vae_scale + 1, cfg.vae_scale)
            raise MultiTalkError(
                f"The audio covers {audio_context.shape[1]} latent frames but the video has {grid[0]}."
            )
        speakers = audio_context.shape[2] // cfg.context_tokens
        if speakers not in (1, 2):
            raise MultiTalkError(f"MultiTalk supports one or two voices; got {speakers}.")

        token_masks = None
        if speakers == 2:
            if ref_target_masks is None:
                raise MultiTalkError("Two voices need person masks (boxes or the default halves).")
            token_masks = token_ref_masks(ref_target_masks, grid[1:]).to(hidden_states.device)
            check_person_masks(token_masks, speakers)

        rotary_emb = self.rope(hidden_states)
        if lean_enabled():
            rotary_emb = complex_rope_table(*rotary_emb)
        hidden_states = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()

        # Time embedding and modulation in float32 whatever the model dtype (as the official autocast).
        embedder = self.condition_embedder
        sinusoid = timestep_sinusoid(timestep.to(hidden_states.device), cfg.freq_dim)
        if sinusoid.shape[0] == 1 and batch > 1:
            sinusoid = sinusoid.expand(batch, -1)
        time_dtype = embedder.time_embedder.linear_1.weight.dtype
        temb = embedder.time_embedder(sinusoid.float().to(time_dtype)).float()
        timestep_proj = F.linear(
            embedder.act_fn(temb), embedder.time_proj.weight.float(), embedder.time_proj.bias.float()
        ).unflatten(1, (6, -1))

        text = encoder_hidden_states
        if text.shape[1] > cfg.text_len:
            raise MultiTalkError(f"The text context has {text.shape[1]} tokens; the model takes at most {cfg.text_len}.")
        text = F.pad(text, (0, 0, 0, cfg.text_len - text.shape[1]))
        context = embedder.text_embedder(text.to(hidden_states.dtype))
        if encoder_hidden_states_image is not None:
            image = embedder.image_embedder(encoder_hidden_states_image.to(hidden_states.dtype))
            context = torch.cat([image, context], dim=1)
        context = context.to(hidden_states.dtype)
        audio_context = audio_context.to(device=hidden_states.device, dtype=hidden_states.dtype)

        if intermediates is not None:
            intermediates.update(
                token_ref_target_masks=token_masks, time_embedding_e=temb,
                time_projection_e0=timestep_proj, blocks_input=hidden_states, blocks=[],
            )
        for block in self.blocks:
            hidden_states = block(
                hidden_states, context, timestep_proj, rotary_emb,
                audio_context=audio_context, grid=grid, token_masks=token_masks,
                speakers=speakers, intermediates=intermediates,
            )

        shift, scale = (self.scale_shift_table.float().to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(batch, *grid, p_t, p_h, p_w, -1)
        output = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3).float()

        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def _register_with_cache_hooks() -> None:
    # diffusers' cache hooks (FirstBlockCache, ...) look blocks up by exact class.
    try:
        from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    except ImportError:
        return
    TransformerBlockRegistry.register(
        MultiTalkTransformerBlock,
        TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
    )


_register_with_cache_hooks()
