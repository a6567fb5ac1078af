import os
import shutil

import pytest

from tests.train.train_helpers import write_tokenized_shards


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> str:
    """A small byte-level BPE tokenizer with the chat tokens and chat_template, built once per session."""
    root = tmp_path_factory.mktemp("tokenizer")
    write_tokenized_shards(str(root))
    return str(root / "tokenizer")


@pytest.fixture
def base_model(tmp_path, tokenizer_dir) -> str:
    """A tiny random model saved as `make train` saves one, with the tokenizer in base/hf."""
    import torch

    from train.checkpoint import model_state, save_weights
    from train.model import ModelConfig, Transformer

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=512, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=128)
    model = Transformer(config)
    directory = str(tmp_path / "base")
    save_weights(model_state(model, config), config, directory)
    shutil.copytree(tokenizer_dir, os.path.join(directory, "hf"))
    return directory
