"""The world: houses, the lattice agent, the renderers and the environment interface.

Importing it registers the Gymnasium environment ``spoc/Nav-v0`` by name only: the entry
point is a string that ``gymnasium.make`` resolves, so importing ``sim`` imports nothing
above it (the class, :class:`datagen.gym_env.NavEnv`, needs the tasks and the oracle).
"""

import gymnasium

NAV_ENV_ID = "spoc/Nav-v0"
"""The Gymnasium id of :class:`datagen.gym_env.NavEnv`."""

if NAV_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=NAV_ENV_ID, entry_point="datagen.gym_env:NavEnv")
