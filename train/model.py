"""A LLaMA-style decoder in one file: RMSNorm pre-norm, SwiGLU, RoPE, grouped-query attention.

Module names, weights and RoPE follow Hugging Face's `LlamaForCausalLM` (rotate-half RoPE,
`repeat_kv` head grouping), so exporting only prefixes tensor names (train/export.py).
Attention is `F.scaled_dot_product_attention`: flash / memory-efficient kernels on GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100  # label value that takes no part in the loss (masked prompt tokens, padding)
LOSS_CHUNK_LOGITS = 2**24  # logits per chunk of the loss (64 MiB in fp32, e.g. 512 rows of a 32k vocabulary)


@dataclass
class ModelConfig:
    vocab_size: int = 8192
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None = n_heads (MHA); 1 = MQA; in between = GQA
    ffn_dim: int | None = None  # None = LLaMA's 8/3 * dim rounded up to a multiple of 64
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    dropout: float = 0.0
    activation_checkpointing: bool = False  # recompute each block in backward: less memory, ~30 % more compute

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.ffn_dim is None:
            self.ffn_dim = 64 * math.ceil(8 * self.dim / 3 / 64)
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"model.{name}: must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"model.dim ({self.dim}) must be divisible by model.n_heads ({self.n_heads})")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(
                f"model: head size dim/n_heads = {self.dim // self.n_heads} must be even (RoPE rotates pairs)"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"model.n_heads ({self.n_heads}) must be a multiple of model.n_kv_heads ({self.n_kv_heads})"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout: must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


class RMSNormFunction(torch.autograd.Function):
    """`F.rms_norm(x, weight.shape, weight, eps)` with its backward written out. On CPU, F.rms_norm is
    a composite of six ops, each recorded by autograd and differentiated one by one; this is two
    autograd-free passes (measured on configs/train/shakespeare_char.yaml: docs/BENCHMARKS.md).
    The output is written in `out_dtype`: under autocast, the dtype the next matmul casts it to."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float, out_dtype: torch.dtype) -> torch.Tensor:
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add_(eps))
        normed = x * rstd
        ctx.save_for_backward(normed, rstd, weight)
        return torch.mul(normed, weight, out=torch.empty_like(x, dtype=out_dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        normed, rstd, weight = ctx.saved_tensors
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:  # the Jacobian of x -> normed is rstd * (I - normed normed^T / dim)
            grad_normed = grad * weight
            grad_x = (grad_normed - normed * (grad_normed * normed).mean(-1, keepdim=True)).mul_(rstd)
        if ctx.needs_input_grad[1]:
            grad_weight = (grad * normed).flatten(0, -2).sum(0)
        return grad_x, grad_weight, None, None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.float32:  # the same as below, with one op fewer
            if x.is_cpu:  # under autocast, in its dtype: the casts of the output and of its gradient are saved
                autocast = torch.is_autocast_enabled("cpu")
                out_dtype = torch.get_autocast_dtype("cpu") if autocast else x.dtype
                return RMSNormFunction.apply(x, self.weight, self.eps, out_dtype)
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # Normalise in fp32 (as LLaMA does) so bf16 activations keep their precision here.
        return self.weight * F.rms_norm(x.float(), self.weight.shape, eps=self.eps).type_as(x)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin, (max_len, head_dim), for `RotaryQKV`: HF's rotate-half layout with
    rotate_half's minus sign folded into the first half of the sin table."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return torch.cat([angles, angles], dim=-1).cos(), torch.cat([-angles, angles], dim=-1).sin()


class RotaryQKV(torch.autograd.Function):
    """The stacked q/k/v projection (batch, time, heads * head_dim) as query, key and value
    (batch, heads, time, head_dim) in `dtype`, queries and keys rotated by RoPE (cos/sin:
    (batch or 1, 1, time, head_dim) from `rope_tables`): HF's x * cos + rotate_half(x) * sin, where
    rotate_half(x) = [-x2, x1] = roll(x) with the sign in sin. One autograd node whose backward
    writes the three gradients into one buffer in the projection's layout and dtype; autograd would
    differentiate the split, the roll, the transposes and the cast one by one and concatenate the
    gradients back (on CPU these small ops cost more than the matmuls: docs/BENCHMARKS.md)."""

    @staticmethod
    def forward(ctx, qkv, cos, sin, n_heads: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype):
        batch, time, _ = qkv.shape
        heads = qkv.view(batch, time, -1, head_dim).transpose(1, 2)
        qk = heads[:, : n_heads + n_kv_heads].to(dtype)
        rotated = torch.addcmul(qk * cos, qk.roll(head_dim // 2, dims=-1), sin).to(dtype)  # fp32 tables
        v = heads[:, n_heads + n_kv_heads :].to(dtype, copy=True)  # never a view of the input
        ctx.save_for_backward(cos, sin)
        ctx.shape, ctx.n_qk, ctx.input_dtype = heads.shape, n_heads + n_kv_heads, qkv.dtype
        q, k = rotated.split([n_heads, n_kv_heads], dim=1)
        return q, k, v

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v):
        cos, sin = ctx.saved_tensors
        batch, heads, time, head_dim = ctx.shape

        def rotate_back(incoming: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            # the transpose of x -> roll(x) * sin is g -> roll(g * sin): a roll by half the head is its own inverse
            return torch.addcmul((incoming * sin).roll(head_dim // 2, dims=-1), incoming, cos, out=out)

        if torch.compiler.is_compiling():  # Dynamo cannot trace strided out= (a graph break); Inductor fuses the cat
            grad = torch.cat([rotate_back(grad_q), rotate_back(grad_k), grad_v], dim=1).to(ctx.input_dtype)
            return grad.transpose(1, 2).reshape(batch, time, -1), None, None, None, None, None, None
        grad = torch.empty(batch, time, heads, head_dim, dtype=ctx.input_dtype, device=cos.device)
        parts = grad.transpose(1, 2).split([grad_q.shape[1], grad_k.shape[1], heads - ctx.n_qk], dim=1)
        for part, incoming in zip(parts[:2], (grad_q, grad_k)):
            rotate_back(incoming, out=part)
        parts[2].copy_(grad_v)
        return grad.view(batch, time, -1), None, None, None, None, None, None


class SwiGLU(torch.autograd.Function):
    """silu(gate) * up of the stacked gate/up projection (..., 2 * ffn_dim); its backward writes both
    gradients into one buffer instead of concatenating them (see RotaryQKV)."""

    @staticmethod
    def forward(ctx, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        activated = F.silu(gate)
        ctx.save_for_backward(gate_up, activated)
        return activated * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate_up, activated = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        if torch.compiler.is_compiling():  # as in RotaryQKV.backward
            return torch.cat([torch.ops.aten.silu_backward(grad * up, gate), grad * activated], dim=-1)
        grad_gate_up = torch.empty_like(gate_up)
        grad_gate, grad_up = grad_gate_up.chunk(2, dim=-1)
        torch.mul(grad, activated, out=grad_up)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=grad_gate)
        return grad_gate_up


class KVCache:
    """Keys and values of past positions, per layer, for generation."""

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, device, dtype):
        shape = (batch_size, config.n_kv_heads, max_len, config.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.length = 0  # positions filled; advanced by the model after each forward

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def stacked_linear(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    """x through several bias-free linear layers, their outputs side by side in the last dimension: one
    matmul on their stacked weights when all are plain nn.Linear (fewer, wider matmuls; autocast casts x
    once), else one by one (e.g. LoRA)."""
    if all(type(layer) is nn.Linear for layer in layers):
        return F.linear(x, torch.cat([layer.weight for layer in layers]))
    return torch.cat([layer(x) for layer in layers], dim=-1)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.layer, self.config = layer, config
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.dim, config.n_heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.n_heads * config.head_dim, config.dim, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None
    ) -> torch.Tensor:
        batch, time, _ = x.shape
        qkv = stacked_linear(x, self.q_proj, self.k_proj, self.v_proj)
        # fp32 on CPU: torch's CPU attention kernels are several times slower in bf16 than in fp32
        dtype = torch.float32 if x.is_cpu else qkv.dtype
        q, k, v = RotaryQKV.apply(qkv, cos, sin, self.n_heads, self.n_kv_heads, self.head_dim, dtype)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(self.layer, k, v)
            k, v = k.to(q.dtype), v.to(q.dtype)  # the cache holds the weights' dtype, autocast's q may differ
        if mask is None and past and time > 1:  # a chunk after a cached prefix: causal with an offset
            mask = torch.ones(time, past + time, dtype=torch.bool, device=x.device).tril(past)
        # Query head h attends with key/value head h // (n_heads / n_kv_heads), as HF's repeat_kv.
        with torch.autocast("cpu", enabled=False):  # CPU autocast would take q, k, v back to bf16
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                is_causal=mask is None and time > 1,
                dropout_p=self.config.dropout if self.training else 0.0,
                enable_gqa=self.n_kv_heads != self.n_heads,
            )
        return self.o_proj(out.transpose(1, 2).reshape(batch, time, -1))


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.up_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.down_proj = nn.Linear(config.ffn_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(SwiGLU.apply(stacked_linear(x, self.gate_proj, self.up_proj)))


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = FeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, mask, cache):
        x = x + self.dropout(self.self_attn(self.input_layernorm(x), cos, sin, mask, cache))
        return x + self.dropout(self.mlp(self.post_attention_layernorm(x)))


class ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of the logits `hidden @ weight.T` (fp32) against `targets`, `chunk_rows`
    rows at a time, so that the (tokens, vocab) logits never exist at once (GBs at a 32k-128k
    vocabulary). A chunk's logits serve the loss and the gradients alike, so forward computes both
    and backward only scales the gradients: no logits are kept for backward or recomputed.
    `with_grads`: False under torch.no_grad (evaluation), where ctx.needs_input_grad still says True
    for inputs that require grad, and the gradients would be computed for nothing."""

    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int, with_grads: bool
    ):
        valid = targets != IGNORE_INDEX
        count = valid.sum()
        safe_targets = targets.clamp(min=0)  # any class for ignored rows; valid masks them out
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        want_hidden, want_weight = (with_grads and wanted for wanted in ctx.needs_input_grad[:2])
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if want_weight else None
        for start in range(0, len(targets), chunk_rows):
            rows = slice(start, start + chunk_rows)
            logits = F.linear(hidden[rows], weight)
            log_probs = logits.float().log_softmax(-1)
            picked = log_probs.gather(1, safe_targets[rows, None]).squeeze(1)
            loss -= (picked * valid[rows]).sum()
            if want_hidden or want_weight:
                # d mean loss / d logits = (softmax - one_hot(target)) / count, 0 on ignored rows,
                # in the logits' dtype as autograd would hand it to the matmul
                grad_logits = log_probs.exp_().scatter_add_(1, safe_targets[rows, None], -valid[rows, None].float())
                grad_logits = (grad_logits * (valid[rows] / count)[:, None]).to(logits.dtype)
                if want_hidden:
                    grad_hidden[rows] = grad_logits @ weight
                if want_weight:
                    grad_weight += grad_logits.T @ hidden[rows]
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return loss / count

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            None if grad_hidden is None else grad_hidden * grad_loss.to(grad_hidden.dtype),
            None if grad_weight is None else (grad_weight * grad_loss).to(ctx.weight_dtype),
            None,
            None,
            None,
        )


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections that write into the residual stream.
        for name, param in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        tokens: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """tokens (batch, time) -> (logits (batch, time, vocab), None), or with targets (batch, time)
        -> (None, mean loss over targets != IGNORE_INDEX), computed without the full logits.

        positions: (batch, time) RoPE positions (default 0..time-1 after any cached prefix);
        packed samples restart them at 0. mask: boolean (batch, 1, time, time) where True =
        may attend (default causal), e.g. block-diagonal causal for packed samples.
        """
        batch, time = tokens.shape
        past = cache.length if cache is not None else 0
        if past + time > self.config.max_seq_len:
            raise ValueError(f"sequence of {past + time} tokens exceeds model.max_seq_len {self.config.max_seq_len}")
        if positions is None:
            cos, sin = self.rope_cos[None, None, past : past + time], self.rope_sin[None, None, past : past + time]
        else:
            cos, sin = self.rope_cos[positions][:, None], self.rope_sin[positions][:, None]
        x = self.embed_tokens(tokens)
        for block in self.layers:
            if self.config.activation_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, mask, cache, use_reentrant=False)
            else:
                x = block(x, cos, sin, mask, cache)
        if cache is not None:
            cache.length += time
        hidden = self.norm(x)
        if targets is None:
            return self.lm_head(hidden), None
        chunk_rows = max(1, LOSS_CHUNK_LOGITS // self.config.vocab_size)
        return None, ChunkedCrossEntropy.apply(
            hidden.flatten(0, 1), self.lm_head.weight, targets.flatten(), chunk_rows, torch.is_grad_enabled()
        )

    def num_params(self, embeddings: bool = True) -> int:
        total = sum(p.numel() for p in self.parameters())
        if not embeddings:
            total -= self.embed_tokens.weight.numel()
        return total

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward): 6 * matmul weights + attention scores (PaLM,
        appendix B). Matmul weights: all but the embedding lookup's; a tied output layer still multiplies."""
        c = self.config
        matmul_weights = self.num_params(embeddings=False) + (c.vocab_size * c.dim if c.tie_embeddings else 0)
        return 6 * matmul_weights + 12 * c.n_layers * c.dim * seq_len

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample continuations of prompt (batch, time) with a KV cache; temperature 0 = greedy."""
        max_new_tokens = min(max_new_tokens, self.config.max_seq_len - prompt.shape[1])
        param = next(self.parameters())
        cache = KVCache(self.config, prompt.shape[0], prompt.shape[1] + max_new_tokens, param.device, param.dtype)
        tokens, step_input = prompt, prompt
        for _ in range(max_new_tokens):
            logits, _ = self(step_input, cache=cache)
            logits = logits[:, -1].float()
            if temperature == 0:
                next_token = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            tokens = torch.cat([tokens, next_token], dim=1)
            step_input = next_token
            if eos_id is not None and bool((next_token == eos_id).all()):
                break
        return tokens
