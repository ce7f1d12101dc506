"""An encoder bigger than the GPU's free memory is streamed layer by layer, not moved whole."""

from __future__ import annotations

import torch
from transformers import UMT5Config, UMT5EncoderModel

from multitalk_desktop.engine.offload import fits_whole, on_device


def _tiny_umt5() -> UMT5EncoderModel:
    torch.manual_seed(0)
    config = UMT5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=2)
    return UMT5EncoderModel(config).eval()


def test_umt5_xxl_does_not_fit_whole_on_an_8_gb_card_but_fits_an_80_gb_one():
    umt5_xxl_bytes = 11_400 * 2**20
    assert not fits_whole(umt5_xxl_bytes, free_bytes=7 * 2**30)
    assert fits_whole(umt5_xxl_bytes, free_bytes=70 * 2**30)


def test_a_streamed_encoder_gives_the_same_output_as_the_whole_one():
    encoder = _tiny_umt5()
    ids = torch.randint(0, 64, (1, 7))
    with torch.no_grad():
        whole = encoder(input_ids=ids).last_hidden_state
        with on_device([encoder], "cpu", force_stream=True):
            streamed = encoder(input_ids=ids).last_hidden_state
        with on_device([encoder], "cpu"):  # stays streamed once decided
            again = encoder(input_ids=ids).last_hidden_state
    assert encoder._multitalk_streamed
    torch.testing.assert_close(streamed, whole)
    torch.testing.assert_close(again, whole)


def test_a_streamed_encoder_keeps_no_second_pinned_copy_of_its_weights():
    from multitalk_desktop.engine.offload import offload_groups

    encoder = _tiny_umt5()
    with on_device([encoder], "cpu", force_stream=True):
        pass
    groups = offload_groups(encoder)
    assert groups and all(group.low_cpu_mem_usage for group in groups)
    # Each group's host copy is the parameter's own storage, not a pinned duplicate.
    for group in groups:
        for param, host in group.cpu_param_dict.items():
            assert host.data_ptr() == param.data.data_ptr()
