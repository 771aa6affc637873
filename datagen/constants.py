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

# Keys of one webdataset sample (one episode); what each holds is in SAMPLE_FEATURES.
KEY_RGB = "rgb.mp4"
KEY_ACTIONS = "actions.npy"
KEY_EXECUTED = "executed.npy"
KEY_META = "meta.json"
KEY_GOAL_DIST = "goal_dist.npy"
KEY_TARGET_PIXELS = "target_pixels.npy"
KEY_TARGET_BOX = "target_box.npy"

META_KEYS = ("episode_id", "house_id", "house_index", "split", "task", "target", "goal", "start",
             "poses", "shortest_length", "shortest_steps", "num_steps", "seed", "success",
             "source")
"""Exactly the keys of every sample's meta.json (:func:`datagen.shards.episode_meta`)."""

STEPS_DIM = "T"
"""The variable dimension of a feature's shape: the episode's steps (meta.json ``num_steps``)."""

SAMPLE_FEATURES: dict[str, dict] = {
    KEY_RGB: {
        "dtype": "uint8", "shape": [STEPS_DIM, "H", "W", 3], "encoding": "H.264 in MP4, yuv420p",
        "present": "every sample of a video dataset (info.json frames: video)",
        "meaning": "frame t is what the agent saw at step t, before action t (H, W: the "
                   "camera's)"},
    KEY_ACTIONS: {
        "dtype": "int8", "shape": [STEPS_DIM], "encoding": "npy", "present": "every sample",
        "meaning": "the label at step t, an index into actions; the last is end for expert "
                   "episodes"},
    KEY_EXECUTED: {
        "dtype": "int8", "shape": [STEPS_DIM], "encoding": "npy",
        "present": "noise-injected and DAgger episodes",
        "meaning": "the action actually taken at step t, where it can differ from the label"},
    KEY_GOAL_DIST: {
        "dtype": "float32", "shape": [STEPS_DIM], "encoding": "npy",
        "present": "every sample (absent in older datasets)",
        "meaning": "metres from the state at step t to the goal set along the shortest path"},
    KEY_TARGET_PIXELS: {
        "dtype": "int32", "shape": [STEPS_DIM], "encoding": "npy",
        "present": "every sample (absent in older datasets)",
        "meaning": "the most pixels one ObjectNav target instance fills in frame t; -1 for "
                   "tasks without a target object"},
    KEY_TARGET_BOX: {
        "dtype": "float32", "shape": [STEPS_DIM, 6], "encoding": "npy",
        "present": "every sample (absent in older datasets)",
        "meaning": "the target's box in frame t: seen, x0, y0, x1, y1 (fractions of the frame), "
                   "sqrt(pixels / frame pixels); zeros where none is in view"},
    KEY_META: {
        "dtype": "json", "keys": list(META_KEYS), "encoding": "JSON object",
        "present": "every sample",
        "meaning": "the episode: house, task, target, start, the pose at each step, the "
                   "shortest path's length, seed, source"},
}
"""What each member of a sample holds, in the order they are written (absent members are
skipped): dtype and shape once decoded, encoding, when it is present, meaning. info.json's
``features`` is this table for the dataset's frames and camera (:func:`datagen.dataset.card`)."""

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
