"""The bundled rlagent environments, registered with Gymnasium on import.

Importing ``envs`` (or ``rlagent``) registers:

* ``rlagent/CustomerService-v0`` -- :class:`envs.customer_service.CustomerServiceEnv`
* ``rlagent/Recommendation-v0`` -- :class:`envs.recommendation.RecommendationEnv`

This package depends on gymnasium and numpy only.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

__all__ = ["ENV_IDS"]

#: Ids of the bundled environments.
ENV_IDS: tuple[str, ...] = ("rlagent/CustomerService-v0", "rlagent/Recommendation-v0")

if "rlagent/CustomerService-v0" not in registry:
    register(
        id="rlagent/CustomerService-v0",
        entry_point="envs.customer_service:CustomerServiceEnv",
        max_episode_steps=20,
    )
if "rlagent/Recommendation-v0" not in registry:
    register(
        id="rlagent/Recommendation-v0",
        entry_point="envs.recommendation:RecommendationEnv",
        max_episode_steps=300,
    )
