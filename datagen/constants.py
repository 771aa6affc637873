"""Names shared by every stage: dataset layout, sample keys, versions, task vocabularies.

Readers and writers import these; nothing else spells a key or a path template.
"""

from sim.lattice import ACTIONS

DATASET_VERSION = "spoc-nav/1"
"""Version of the episode-shard format; a reader refuses any other."""

INFO_FILE = "info.json"
HOUSES_DIR = "houses"
"""The folder of a dataset that holds a copy of each split's house file, named by content
(``houses/{sha256[:16]}.jsonl.gz``), so the dataset carries what its frames are rendered from."""
SHARD_TEMPLATE = "{split}/shard-{index:06d}.tar"
SHARD_GLOB = "shard-*.tar"
SPLITS = ("train", "val", "test")

FRAMES_VIDEO = "video"
"""info.json ``frames`` of a dataset whose samples hold the frames as ``rgb.mp4``."""
FRAMES_NONE = "none"
"""info.json ``frames`` of a pose-only dataset: no ``rgb.mp4``; readers render the frames at
the stored poses from the dataset's house files."""
FRAME_KINDS = (FRAMES_VIDEO, FRAMES_NONE)

POSE_DIGITS = 6
"""Decimals of the poses meta.json stores (metres and degrees)."""

# Keys of one webdataset sample (one episode).
KEY_RGB = "rgb.mp4"  # H.264 frames, one per step, frame t is what the agent saw before action t;
#   absent from the samples of a pose-only dataset (info.json ``frames`` is ``none``)
KEY_ACTIONS = "actions.npy"  # int8 (T,), indices into ACTIONS; the last is END
KEY_EXECUTED = "executed.npy"  # int8 (T,), noisy/DAgger only: the action taken at t (labels differ)
KEY_META = "meta.json"  # house id, task, target, start pose, poses, shortest length, seed, source
# Per-step labels of `spoc-datagen episodes` and `spoc-dagger` samples (absent in older datasets):
KEY_GOAL_DIST = "goal_dist.npy"  # float32 (T,), metres from the state at t to the goal set
KEY_TARGET_PIXELS = "target_pixels.npy"  # int32 (T,), most pixels of one ObjectNav target
#   instance in frame t (any distance); -1 throughout for tasks without a target object
KEY_TARGET_BOX = "target_box.npy"  # float32 (T, 6), sim.detect.target_box of frame t's ids at
#   the stored pose (what `--data.target_box` feeds the policy); zeros where none is in view

ACTION_VOCAB = list(ACTIONS)

SOURCE_EXPERT = "expert"
"""meta.json ``source`` of a noiseless expert episode (replayable: its labels were taken)."""
SOURCE_NOISY = "expert-noise"
"""``source`` of an expert episode driven with injected action noise (labels != executed)."""

TASK_OBJECTNAV = "objectnav"
TASK_ROOMNAV = "roomnav"
TASKS = (TASK_OBJECTNAV, TASK_ROOMNAV)

OBJECTNAV_TARGETS = (
    "AlarmClock", "Apple", "BaseballBat", "BasketBall", "Bed", "Bowl", "Chair", "GarbageCan",
    "HousePlant", "Laptop", "Mug", "Sofa", "SprayBottle", "Television", "Toilet", "Vase",
)
"""ProcTHOR's 16 ObjectNav target types (Deitke et al. 2022)."""

ROOMNAV_TARGETS = ("Bathroom", "Bedroom", "Kitchen", "LivingRoom")
"""ProcTHOR's room types."""
