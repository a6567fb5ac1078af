import pytest


@pytest.fixture(autouse=True)
def few_shuffle_partitions():
    """Ray's default 200 hash-shuffle partitions make each dedup shuffle take seconds on a tiny table."""
    import ray

    context = ray.data.DataContext.get_current()
    before = context.default_hash_shuffle_parallelism
    context.default_hash_shuffle_parallelism = 4
    yield
    context.default_hash_shuffle_parallelism = before
