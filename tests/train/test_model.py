import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from train.model import (
    IGNORE_INDEX,
    ChunkedCrossEntropy,
    ModelConfig,
    RMSNorm,
    RMSNormFunction,
    RotaryQKV,
    SwiGLU,
    Transformer,
    rope_tables,
)

SMALL = dict(vocab_size=97, dim=64, n_layers=2, n_heads=4, max_seq_len=32)


def model(**overrides) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**{**SMALL, **overrides})).eval()


def test_shapes_and_loss_ignore_masked_targets():
    net = model()
    tokens = torch.randint(0, 97, (3, 16))
    logits, no_loss = net(tokens)
    assert logits.shape == (3, 16, 97) and no_loss is None
    no_logits, loss = net(tokens, tokens)
    assert no_logits is None and loss.ndim == 0  # with targets the full logits are never made
    targets = tokens.clone()
    targets[:, :8] = IGNORE_INDEX
    _, masked = net(tokens, targets)
    expected = torch.nn.functional.cross_entropy(logits[:, 8:].reshape(-1, 97), tokens[:, 8:].reshape(-1))
    assert torch.allclose(masked, expected, atol=1e-6)


def test_rms_norm_function_and_its_gradients_equal_f_rms_norm():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(16, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: RMSNormFunction.apply(x, w, 1e-5, x.dtype), (x, weight))
    grad = torch.randn(3, 5, 16, dtype=torch.float64, generator=generator)
    mine = RMSNormFunction.apply(x, weight, 1e-5, x.dtype)
    mine_grads = torch.autograd.grad(mine, (x, weight), grad)
    theirs = F.rms_norm(x, (16,), weight, 1e-5)
    their_grads = torch.autograd.grad(theirs, (x, weight), grad)
    assert torch.allclose(mine, theirs) and all(map(torch.allclose, mine_grads, their_grads))


def test_rms_norm_under_cpu_autocast_writes_the_matmul_dtype_with_the_same_values_and_gradients():
    generator = torch.Generator().manual_seed(0)
    norm = RMSNorm(16, 1e-5)
    norm.weight.data = torch.randn(16, generator=generator)
    x = torch.randn(3, 5, 16, generator=generator, requires_grad=True)
    grad = torch.randn(3, 5, 16, generator=generator).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mine = norm(x)
    mine_grads = torch.autograd.grad(mine, (x, norm.weight), grad)
    # what autocast's next matmul would have done: cast the fp32 norm to bf16
    theirs = F.rms_norm(x, (16,), norm.weight, 1e-5).bfloat16()
    their_grads = torch.autograd.grad(theirs, (x, norm.weight), grad)
    assert mine.dtype == torch.bfloat16 and torch.equal(mine, theirs)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(mine_grads, their_grads))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_rotary_qkv_and_its_gradients_equal_hf_rope_on_the_split_projection(n_kv_heads):
    generator = torch.Generator().manual_seed(0)
    heads, head_dim, time = 4, 8, 6
    qkv = torch.randn(2, time, (heads + 2 * n_kv_heads) * head_dim, dtype=torch.float64, generator=generator)
    qkv.requires_grad_()
    cos, sin = rope_tables(head_dim, time, 10000.0)
    cos, sin = cos.double()[None, None], sin.double()[None, None]
    args = (cos, sin, heads, n_kv_heads, head_dim, torch.float64)
    assert torch.autograd.gradcheck(lambda t: RotaryQKV.apply(t, *args), (qkv,))
    mine = RotaryQKV.apply(qkv, *args)
    # HF's LlamaAttention: split, (batch, heads, time, head_dim), x * cos + rotate_half(x) * sin
    q, k, v = qkv.view(2, time, -1, head_dim).transpose(1, 2).split([heads, n_kv_heads, n_kv_heads], dim=1)
    inv_freq = 1.0 / 10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(time, dtype=torch.float32), inv_freq).repeat(1, 2)
    hf_cos, hf_sin = angles.cos().double(), angles.sin().double()  # fp32 tables, as HF's and ours
    theirs = (q * hf_cos + rotate_half(q) * hf_sin, k * hf_cos + rotate_half(k) * hf_sin, v)
    grads = [torch.randn(t.shape, dtype=torch.float64, generator=generator) for t in theirs]
    assert all(map(torch.allclose, mine, theirs))
    assert torch.allclose(torch.autograd.grad(mine, qkv, grads)[0], torch.autograd.grad(theirs, qkv, grads)[0])


def test_swiglu_and_its_gradient_equal_silu_gate_times_up():
    generator = torch.Generator().manual_seed(0)
    gate_up = torch.randn(3, 5, 2 * 16, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(SwiGLU.apply, (gate_up,))
    gate, up = gate_up.chunk(2, dim=-1)
    grad = torch.randn(3, 5, 16, dtype=torch.float64, generator=generator)
    mine, theirs = SwiGLU.apply(gate_up), F.silu(gate) * up
    assert torch.allclose(mine, theirs)
    assert torch.allclose(torch.autograd.grad(mine, gate_up, grad)[0], torch.autograd.grad(theirs, gate_up, grad)[0])


def test_a_block_compiles_to_one_graph_with_the_eager_outputs_and_gradients():
    """RotaryQKV's and SwiGLU's backward write into strided out= views in eager mode, which Dynamo
    cannot trace (a graph break per call); compiled, they concatenate instead."""
    block = model().layers[0]
    torch._dynamo.reset()
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)  # fullgraph: a graph break fails
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 64, generator=generator, requires_grad=True)
    cos, sin = rope_tables(16, 16, 10000.0)
    results = []
    for run in (block, compiled):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = run(x, cos[None, None], sin[None, None], None, None)
        results.append((out, *torch.autograd.grad(out.float().square().sum(), (x, *block.parameters()))))
    assert all(torch.allclose(a.float(), b.float(), atol=1e-2, rtol=1e-2) for a, b in zip(*results))


def plain_loss(hidden, weight, targets):
    return F.cross_entropy(F.linear(hidden, weight).float(), targets, ignore_index=IGNORE_INDEX)


@pytest.mark.parametrize("chunk_rows", [1, 7, 40, 1000])
def test_chunked_loss_and_gradients_equal_the_plain_cross_entropy(chunk_rows):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(40, 16, generator=generator, requires_grad=True)
    weight = torch.randn(11, 16, generator=generator, requires_grad=True)
    targets = torch.randint(0, 11, (40,), generator=generator)
    targets[::3] = IGNORE_INDEX
    chunked = ChunkedCrossEntropy.apply(hidden, weight, targets, chunk_rows, True)
    (2.5 * chunked).backward()  # a scaled loss, as gradient accumulation divides it
    grads = hidden.grad, weight.grad
    hidden.grad = weight.grad = None
    plain = plain_loss(hidden, weight, targets)
    (2.5 * plain).backward()
    assert torch.allclose(chunked, plain, atol=1e-6)
    assert torch.allclose(grads[0], hidden.grad, atol=1e-7) and torch.allclose(grads[1], weight.grad, atol=1e-7)


def test_chunked_loss_under_no_grad_multiplies_only_for_the_logits():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(40, 16, generator=generator, requires_grad=True)
    weight = torch.randn(11, 16, generator=generator, requires_grad=True)
    targets = torch.randint(0, 11, (40,), generator=generator)
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        loss = ChunkedCrossEntropy.apply(hidden, weight, targets, 7, False)
    assert flops.get_total_flops() == 2 * 40 * 16 * 11  # the logits' matmul; no gradient matmuls
    assert torch.allclose(loss, plain_loss(hidden, weight, targets), atol=1e-6)


def test_evaluating_the_loss_costs_the_matmuls_of_the_logits_only():
    net, tokens = model().eval(), torch.randint(0, 97, (2, 17))
    counts = []
    with torch.no_grad():
        for targets in (None, tokens[:, 1:]):
            with FlopCounterMode(display=False) as flops:
                net(tokens[:, :-1], targets)
            counts.append(flops.get_total_flops())
    assert counts[0] == counts[1]


def test_chunked_loss_under_bf16_autocast_is_close_to_the_plain_one():
    generator = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(64, 32, generator=generator), torch.randn(50, 32, generator=generator)
    targets = torch.randint(0, 50, (64,), generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        chunked, plain = (
            ChunkedCrossEntropy.apply(hidden, weight, targets, 10, True),
            plain_loss(hidden, weight, targets),
        )
    assert chunked.dtype == torch.float32 and torch.allclose(chunked, plain, rtol=1e-3)


def test_training_gradients_equal_those_of_the_plain_loss_and_no_full_logits_are_kept():
    net, tokens = model().train(), torch.randint(0, 97, (3, 16))
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(t.shape) or t, lambda t: t):
        _, loss = net(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    assert not any(shape[-1] == 97 and shape.numel() > 97 for shape in shapes)  # only the embedding table
    chunked = {name: param.grad.clone() for name, param in net.named_parameters()}
    net.zero_grad()
    logits, _ = net(tokens[:, :-1])
    F.cross_entropy(logits.reshape(-1, 97), tokens[:, 1:].reshape(-1)).backward()
    for name, param in net.named_parameters():
        assert torch.allclose(chunked[name], param.grad, atol=1e-6), name


def test_flops_per_token_counts_the_tied_output_layer():
    tied, untied = model(), model(tie_embeddings=False)
    assert tied.flops_per_token(32) == untied.flops_per_token(32)
    weights = sum(p.numel() for name, p in untied.named_parameters() if name != "embed_tokens.weight")
    assert tied.flops_per_token(32) == 6 * weights + 12 * 2 * 64 * 32  # the lm_head's 97 x 64 included


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


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dim": 66}, "divisible by model.n_heads"),
        ({"n_kv_heads": 3}, "multiple of model.n_kv_heads"),
        ({"n_layers": 0}, "model.n_layers"),
        ({"dropout": 1.5}, "model.dropout"),
    ],
)
def test_bad_config_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**SMALL, **overrides})


def test_longer_than_max_seq_len_is_refused():
    with pytest.raises(ValueError, match="max_seq_len"):
        model()(torch.zeros(1, 33, dtype=torch.long))
