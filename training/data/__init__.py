"""Reading episode shards for training (``spoc-train``'s data): info.json checks
(:mod:`.info`), what is read against what info.json lists (:mod:`.accounting`), episodes to
chunks (:mod:`.chunks`, :mod:`.augment`), frames and labels rendered from the houses
(:mod:`.houses`), streams (:mod:`.streams`) and the LightningDataModule (:mod:`.datamodule`)."""
