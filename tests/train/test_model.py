import pytest

torch = pytest.importorskip("torch")

from train.model import IGNORE_INDEX, ModelConfig, Transformer  # noqa: E402

SMALL = dict(vocab_size=97, dim=64, n_layers=2, n_heads=4, max_seq_len=32)


def model(**overrides) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**{**SMALL, **overrides})).eval()


def test_shapes_and_loss_ignore_masked_targets():
    net = model()
    tokens = torch.randint(0, 97, (3, 16))
    logits, loss = net(tokens, tokens)
    assert logits.shape == (3, 16, 97) and loss.ndim == 0
    targets = tokens.clone()
    targets[:, :8] = IGNORE_INDEX
    _, masked = net(tokens, targets)
    expected = torch.nn.functional.cross_entropy(logits[:, 8:].reshape(-1, 97), tokens[:, 8:].reshape(-1))
    assert torch.allclose(masked, expected, atol=1e-6)


def test_a_future_token_cannot_change_a_past_logit():
    net = model(n_kv_heads=2)
    tokens = torch.randint(0, 97, (2, 20))
    changed = tokens.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 97
    before, after = net(tokens)[0], net(changed)[0]
    assert torch.equal(before[:, :12], after[:, :12])
    assert not torch.allclose(before[:, 12:], after[:, 12:])


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_grouped_query_attention_equals_mha_with_each_kv_head_repeated(kv_heads):
    """GQA with g key/value heads = MHA whose heads of one group share the same k/v weights."""
    gqa = model(n_kv_heads=kv_heads)
    mha = model(n_kv_heads=4)
    state = gqa.state_dict()
    head_dim, repeat = 64 // 4, 4 // kv_heads
    for key in list(state):
        if key.endswith(("k_proj.weight", "v_proj.weight")):
            per_head = state[key].view(kv_heads, head_dim, 64)
            state[key] = per_head.repeat_interleave(repeat, dim=0).reshape(4 * head_dim, 64)
    mha.load_state_dict(state)
    tokens = torch.randint(0, 97, (2, 16))
    assert torch.allclose(gqa(tokens)[0], mha(tokens)[0], atol=1e-5)


def test_kv_cache_generation_equals_recomputing_the_whole_prefix():
    net = model(n_kv_heads=2)
    prompt = torch.randint(0, 97, (2, 5))
    cached = net.generate(prompt, 12, temperature=0)
    tokens = prompt
    for _ in range(12):
        tokens = torch.cat([tokens, net(tokens)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, tokens)


def test_packed_samples_with_block_mask_and_position_reset_equal_separate_runs():
    net = model()
    first, second = torch.randint(0, 97, (1, 7)), torch.randint(0, 97, (1, 9))
    packed = torch.cat([first, second], dim=1)
    positions = torch.cat([torch.arange(7), torch.arange(9)])[None]
    segment = torch.tensor([0] * 7 + [1] * 9)
    mask = (segment[:, None] == segment[None, :]) & torch.ones(16, 16, dtype=torch.bool).tril()
    logits = net(packed, positions=positions, mask=mask[None, None])[0]
    assert torch.allclose(logits[:, :7], net(first)[0], atol=1e-5)
    assert torch.allclose(logits[:, 7:], net(second)[0], atol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"dim": 66}, "divisible by model.n_heads"),
    ({"n_kv_heads": 3}, "multiple of model.n_kv_heads"),
    ({"n_layers": 0}, "model.n_layers"),
    ({"dropout": 1.5}, "model.dropout"),
])
def test_bad_config_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**SMALL, **overrides})


def test_longer_than_max_seq_len_is_refused():
    with pytest.raises(ValueError, match="max_seq_len"):
        model()(torch.zeros(1, 33, dtype=torch.long))
