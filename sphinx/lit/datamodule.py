"""Images as a Lightning test set: sharded across ranks without repeats, finished ones skipped."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sphinx.data.datasets import collate_items

# The index an idle rank is served: no image, so that a rank with nothing left still takes part in
# the loop (Lightning refuses a rank whose loader is empty while others have work).
IDLE = -1


class PendingImages(Dataset):
    """The images of a dataset that are not done yet, each with its position in the dataset."""

    def __init__(self, dataset: Dataset, done: set[str]) -> None:
        self.dataset = dataset
        self.positions = [i for i, image_id in enumerate(dataset.ids) if image_id not in done]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int):
        if index == IDLE:
            return None
        position = self.positions[index]
        return position, self.dataset[position]


class ShardSampler(Sampler[int]):
    """Rank r takes items r, r + world, r + 2 world, ...: every image exactly once.

    Lightning's default distributed sampler pads the dataset by repeating images so that ranks
    get equal counts; that would invert and count some images twice. A rank left without images
    gets one empty batch (:data:`IDLE`) instead.
    """

    def __init__(self, length: int, *, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size)) or [IDLE]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def collate_with_positions(batch: Sequence, *, resolution: int) -> dict:
    batch = [entry for entry in batch if entry is not None]  # an idle rank's batch is empty
    positions, items = zip(*batch) if batch else ((), ())
    collated = collate_items(list(items), resolution=resolution)
    by_id = {item.id: position for position, item in zip(positions, items)}
    collated["positions"] = {image_id: by_id[image_id] for image_id in by_id}
    return collated


class InversionDataModule(pl.LightningDataModule):
    """Serves the pending images of a dataset in batches of ``batch_size``.

    Args:
        dataset: a sphinx image dataset (has ``ids``; yields ``ImageItem``).
        batch_size: images optimized together.
        done: ids already finished in this run dir (resume).
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, done: set[str]) -> None:
        super().__init__()
        self.pending = PendingImages(dataset, done)
        self.batch_size = batch_size

    def test_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = ShardSampler(len(self.pending), rank=rank, world_size=world)
        return DataLoader(
            self.pending,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=partial(collate_with_positions, resolution=self.pending.dataset.resolution),
            num_workers=0,
        )

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        return {**batch, "images": batch["images"].to(device)}
