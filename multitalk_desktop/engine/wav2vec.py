"""wav2vec2 speech features the way MultiTalk computes them, on `transformers.Wav2Vec2Model`.

Differences from a stock forward (all from the official `src/audio_analysis/wav2vec2.py`):
the convolutional features are linearly resampled (align_corners=True) to the video frame count,
int(seconds * 25), BEFORE the feature projection and the transformer encoder, so the encoder runs at
25 fps; and the output is every transformer layer's hidden state stacked, [frames, layers, hidden]
(the encoder input, hidden_states[0], is dropped). Layer outputs are read with forward hooks, which
works on transformers 4.x and 5.x alike (5.x no longer returns hidden_states from the encoder).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from multitalk_desktop.errors import ModelFilesError, MultiTalkError

SAMPLE_RATE = 16000
VIDEO_FPS = 25

# The chinese-wav2vec2-base preprocessor: no zero-mean/unit-variance normalisation.
DEFAULT_FEATURE_EXTRACTOR = {
    "feature_size": 1,
    "sampling_rate": SAMPLE_RATE,
    "padding_value": 0.0,
    "padding_side": "right",
    "do_normalize": False,
    "return_attention_mask": False,
}


def video_frame_count(num_samples: int, sample_rate: int = SAMPLE_RATE, fps: int = VIDEO_FPS) -> int:
    """Video frames the audio covers, truncated as the official code does: int(seconds * fps)."""
    return int(num_samples / sample_rate * fps)


class MultiTalkWav2Vec2Model(Wav2Vec2Model):
    """Wav2Vec2Model whose encoder runs on conv features resampled to the video frame rate."""

    def conv_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """input_values [B, samples] -> convolutional features [B, conv_dim, n] (about 50 Hz)."""
        return self.feature_extractor(input_values)

    def encode_frames(
        self, input_values: torch.Tensor, num_frames: int, intermediates: dict | None = None
    ) -> torch.Tensor:
        """input_values [B, samples] -> every layer's output [B, num_frames, layers, hidden]."""
        conv = self.conv_features(input_values)
        resampled = F.interpolate(conv, size=num_frames, mode="linear", align_corners=True).transpose(1, 2)
        hidden, _ = self.feature_projection(resampled)

        layer_outputs: list[torch.Tensor] = []

        def keep_output(_module, _inputs, output):
            layer_outputs.append(output[0] if isinstance(output, tuple) else output)

        hooks = [layer.register_forward_hook(keep_output) for layer in self.encoder.layers]
        try:
            last = self.encoder(hidden).last_hidden_state
        finally:
            for hook in hooks:
                hook.remove()
        if len(layer_outputs) != len(self.encoder.layers):
            raise RuntimeError("wav2vec2: not every encoder layer ran (layerdrop in training mode?)")
        # The stable-layer-norm variant normalises after the last layer; hidden_states[-1] is that.
        layer_outputs[-1] = last
        if intermediates is not None:
            intermediates.update(conv_features=conv, interpolated_features=resampled)
        return torch.stack(layer_outputs, dim=2)


def wav2vec_config_from_dict(config: Mapping[str, Any]) -> Wav2Vec2Config:
    """A Wav2Vec2Config from a saved config.json-like dict (e.g. a fixture's `config`)."""
    return Wav2Vec2Config.from_dict(dict(config))


def build_wav2vec_model(config: Wav2Vec2Config | Mapping[str, Any], attn_implementation: str = "sdpa") -> MultiTalkWav2Vec2Model:
    """An eval-mode MultiTalkWav2Vec2Model with random weights of the given configuration."""
    if not isinstance(config, Wav2Vec2Config):
        config = wav2vec_config_from_dict(config)
    config._attn_implementation = attn_implementation
    model = MultiTalkWav2Vec2Model(config)
    return model.eval()


def load_wav2vec_state_dict(model: MultiTalkWav2Vec2Model, state_dict: Mapping[str, torch.Tensor], strict: bool = True):
    """Load wav2vec2 weights; accepts both weight-norm namings of the positional convolution
    (`weight_g`/`weight_v` of older checkpoints, `parametrizations.weight.original0/1` of newer)."""
    renamed = {}
    for key, value in state_dict.items():
        key = key.removeprefix("wav2vec2.")
        key = key.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
        key = key.replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1")
        renamed[key] = value
    result = model.load_state_dict(renamed, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ModelFilesError(
            "The wav2vec2 weights do not match the model: "
            f"missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}.",
            "Check the chinese-wav2vec2-base folder (config.json and model weights).",
        )
    return result


def feature_extractor_from_settings(settings: Mapping[str, Any] | None) -> Wav2Vec2FeatureExtractor:
    kwargs = dict(DEFAULT_FEATURE_EXTRACTOR if settings is None else settings)
    kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_") and k != "feature_extractor_type"}
    return Wav2Vec2FeatureExtractor(**kwargs)


def encode_speech(
    speech: np.ndarray,
    model: MultiTalkWav2Vec2Model,
    feature_extractor_settings: Mapping[str, Any] | None = None,
    intermediates: dict | None = None,
) -> torch.Tensor:
    """16 kHz mono speech [samples] -> wav2vec features [int(seconds*25), layers, hidden] (float32,
    on the model's device), as the official get_embedding computes them. The feature extractor
    settings decide `do_normalize` (off for chinese-wav2vec2-base)."""
    speech = np.asarray(speech, dtype=np.float32).reshape(-1)
    frames = video_frame_count(speech.shape[0])
    if frames < 1:
        raise MultiTalkError("The audio is too short: it must cover at least one video frame (40 ms).")
    extractor = feature_extractor_from_settings(feature_extractor_settings)
    values = np.squeeze(extractor(speech, sampling_rate=SAMPLE_RATE).input_values)
    param = next(model.parameters())
    input_values = torch.from_numpy(np.asarray(values, dtype=np.float32)).reshape(1, -1)
    input_values = input_values.to(device=param.device, dtype=param.dtype)
    if intermediates is not None:
        intermediates["input_values"] = input_values[0]
    with torch.no_grad():
        features = model.encode_frames(input_values, frames, intermediates)
    return features[0].float()
